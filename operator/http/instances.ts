/**
 * The write paths that dominate a registry's traffic after discovery: heartbeats (every
 * instance, every third of its TTL) and registrations (every start, every re-registration
 * after a 404). Both are answered before express with the same contract as the REST routes
 * they replace: JSON bodies validated with the shared zod schemas, the same error catalog.
 * Through express + body-parser a registration cost ~400 µs of CPU and its garbage grew the
 * heap; see bench/RESULTS.md.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { validationError } from '../../common/errors.js';
import { z } from 'zod';
import {
  heartbeatRequestSchema,
  instanceIdSchema,
  registerRequestSchema,
} from '../../common/wire.js';
import type { Registry } from '../registry/registry.js';
import type { Logger } from '../telemetry/logger.js';
import { readJsonBody } from './body.js';
import type { InstanceWriteGuard } from '../auth/instance-guard.js';

const HEARTBEAT_RE = /^\/api\/v1\/instances\/([^/?#]+)\/heartbeat\/?(?:\?.*)?$/;

const idParamSchema = z.object({ id: instanceIdSchema });

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;

/** The caller's `x-request-id` when well-formed, for the log line of a write. */
export function requestId(req: IncomingMessage): string | undefined {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID_RE.test(given) ? given : undefined;
}

const INSTANCES_RE = /^\/api\/v1\/instances\/?(?:\?.*)?$/;

export function isRegister(req: IncomingMessage): boolean {
  return req.method === 'POST' && INSTANCES_RE.test(req.url ?? '');
}

export interface WriteDeps {
  registry: Registry;
  bodyLimitBytes: number;
  logger: Logger;
  guard: InstanceWriteGuard;
}

export async function registerAnswer(
  deps: WriteDeps,
  req: IncomingMessage,
): Promise<{ status: number; body: string }> {
  const body = registerRequestSchema.safeParse(await readJsonBody(req, deps.bodyLimitBytes));
  if (!body.success) throw validationError('registration', body.error);
  const plan = await deps.guard.register(req, body.data);
  const { instance, created } =
    plan.kind === 'sidecar'
      ? deps.registry.attachSidecar(plan.id, body.data)
      : deps.registry.register(body.data);
  deps.logger.info(
    {
      reqId: requestId(req),
      instance: instance.id,
      service: instance.service,
      host: instance.host,
      port: instance.port,
      created,
      ...(plan.kind === 'sidecar' && {
        pod: plan.identity.pod?.name,
        serviceAccount: plan.identity.serviceAccount,
      }),
    },
    created ? 'instance registered' : 'instance renewed',
  );
  return { status: created ? 201 : 200, body: JSON.stringify({ instance }) };
}

export function matchHeartbeat(req: IncomingMessage): string | undefined {
  if (req.method !== 'PUT') return undefined;
  return HEARTBEAT_RE.exec(req.url ?? '')?.[1];
}

export async function heartbeatAnswer(
  deps: WriteDeps,
  req: IncomingMessage,
  rawId: string,
): Promise<string> {
  const id = idParamSchema.safeParse({
    id: rawId.includes('%') ? decodeURIComponent(rawId) : rawId,
  });
  if (!id.success) throw validationError('path', id.error);
  // No body at all means an empty heartbeat; a JSON `null` is a body, and an invalid one.
  const raw = await readJsonBody(req, deps.bodyLimitBytes);
  const body = heartbeatRequestSchema.safeParse(raw === undefined ? {} : raw);
  if (!body.success) throw validationError('heartbeat', body.error);
  await deps.guard.instance(req, id.data.id);
  return JSON.stringify({ instance: deps.registry.heartbeat(id.data.id, body.data) });
}

export function respondJson(
  res: ServerResponse,
  status: number,
  body: string | Buffer,
  opts: { close?: boolean; head?: boolean } = {},
): void {
  const length = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  const headers = ['content-type', 'application/json', 'content-length', String(length)];
  if (opts.close === true) headers.push('connection', 'close');
  res.writeHead(status, headers);
  if (opts.head === true) res.end();
  else res.end(body);
}
