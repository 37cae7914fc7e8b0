/**
 * The bridge from an HTTP request to the policy layer's transport-free `Caller`: the request
 * id the audit log names, the client's address and the `x-maxine-source` header. Each is read
 * when the policy layer first asks (a getter), so the discovery hot path pays for none of them
 * unless a record is written.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Principal } from '../auth/authenticator.js';
import type { Caller, Origin } from '../policy/access.js';
import { clientAddress } from './address-limit.js';

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;

/** The caller's `x-request-id` when well-formed, for the log line of a write. */
export function requestId(req: IncomingMessage): string | undefined {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID_RE.test(given) ? given : undefined;
}

/** One id per request, also for the fast paths (express sets its own before this). */
function idOf(req: IncomingMessage): string {
  const r = req as { id?: string };
  r.id ??= requestId(req) ?? randomUUID();
  return r.id;
}

/** Where `req` came from, before its principal is known. */
export function originOf(req: IncomingMessage): Origin {
  return {
    get requestId() {
      return idOf(req);
    },
    get address() {
      return clientAddress(req);
    },
    get source() {
      return req.headers['x-maxine-source'];
    },
  };
}

/** `req` and the principal that made it, as the policy layer sees them. */
export function callerOf(req: IncomingMessage, principal: Principal): Caller {
  return {
    principal,
    get requestId() {
      return idOf(req);
    },
    get address() {
      return clientAddress(req);
    },
    get source() {
      return req.headers['x-maxine-source'];
    },
  };
}
