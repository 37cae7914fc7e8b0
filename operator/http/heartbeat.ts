/**
 * The heartbeat path: `PUT /api/v1/instances/{id}/heartbeat` is, after discovery, the most
 * frequent request (every instance, every third of its TTL), so it too is answered before
 * express. The contract is the same as the REST route it replaces: the body is optional
 * JSON, validated with the shared zod schema; 404 tells the caller to register again.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { validationError } from '../../common/errors.js';
import { heartbeatRequestSchema, instanceIdSchema } from '../../common/wire.js';
import type { Registry } from '../registry/registry.js';
import { readJsonBody } from './body.js';

const HEARTBEAT_RE = /^\/api\/v1\/instances\/([^/?#]+)\/heartbeat(?:\?.*)?$/;

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
  const id = instanceIdSchema.safeParse(rawId.includes('%') ? decodeURIComponent(rawId) : rawId);
  if (!id.success) throw validationError('path', id.error);
  // No body at all means an empty heartbeat; a JSON `null` is a body, and an invalid one.
  const raw = await readJsonBody(req, bodyLimit);
  const body = heartbeatRequestSchema.safeParse(raw === undefined ? {} : raw);
  if (!body.success) throw validationError('heartbeat', body.error);
  return JSON.stringify({ instance: registry.heartbeat(id.data, body.data) });
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
