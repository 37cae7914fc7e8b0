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

export async function registerAnswer(
  registry: Registry,
  req: IncomingMessage,
  bodyLimit: number,
  logger: Logger,
): Promise<{ status: number; body: string }> {
  const body = registerRequestSchema.safeParse(await readJsonBody(req, bodyLimit));
  if (!body.success) throw validationError('registration', body.error);
  const { instance, created } = registry.register(body.data);
  logger.info(
    {
      reqId: requestId(req),
      instance: instance.id,
      service: instance.service,
      host: instance.host,
      port: instance.port,
      created,
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
  registry: Registry,
  req: IncomingMessage,
  rawId: string,
  bodyLimit: number,
): Promise<string> {
  const id = idParamSchema.safeParse({
    id: rawId.includes('%') ? decodeURIComponent(rawId) : rawId,
  });
  if (!id.success) throw validationError('path', id.error);
  // No body at all means an empty heartbeat; a JSON `null` is a body, and an invalid one.
  const raw = await readJsonBody(req, bodyLimit);
  const body = heartbeatRequestSchema.safeParse(raw === undefined ? {} : raw);
  if (!body.success) throw validationError('heartbeat', body.error);
  return JSON.stringify({ instance: registry.heartbeat(id.data.id, body.data) });
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
