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

/**
 * Where `req` came from, before its principal is known. A class, so its getters live on the
 * prototype: an object literal with getters cost ~1 µs to build per request (issue 17's
 * profile), an instance of this a few ns.
 */
class HttpOrigin implements Origin {
  constructor(protected readonly req: IncomingMessage) {}

  get requestId(): string {
    return idOf(this.req);
  }

  get address(): string {
    return clientAddress(this.req);
  }

  get source(): string | string[] | undefined {
    return this.req.headers['x-maxine-source'];
  }
}

class HttpCaller extends HttpOrigin implements Caller {
  constructor(
    req: IncomingMessage,
    readonly principal: Principal,
  ) {
    super(req);
  }
}

/** Where `req` came from, before its principal is known. */
export function originOf(req: IncomingMessage): Origin {
  return new HttpOrigin(req);
}

/** `req` and the principal that made it, as the policy layer sees them. */
export function callerOf(req: IncomingMessage, principal: Principal): Caller {
  return new HttpCaller(req, principal);
}
