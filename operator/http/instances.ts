/**
 * The write paths that dominate a registry's traffic after discovery: heartbeats (every
 * instance, every third of its TTL) and registrations (every start, every re-registration
 * after a 404). Both are answered before express with the same contract as the REST routes
 * they replace: JSON bodies validated with the shared zod schemas, the same error catalog.
 * Through express + body-parser a registration cost ~400 µs of CPU and its garbage grew the
 * heap; see bench/RESULTS.md.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MaxineError, validationError } from '../../common/errors.js';
import { z } from 'zod';
import {
  heartbeatRequestSchema,
  instanceIdSchema,
  registerRequestSchema,
} from '../../common/wire.js';
import type { RegisterRequest } from '../../common/wire.js';
import type { ServiceRef } from '../../common/policy/acl.js';
import { instanceId, instanceNotFound } from '../registry/registry.js';
import type { RegisterResult, Registry } from '../registry/registry.js';
import type { Logger } from '../../common/logger.js';
import { hasBody, readCompleteJsonBody, readJsonBody } from './body.js';
import type { InstanceWriteGuard } from '../auth/instance-guard.js';
import type { AccessControl, Caller } from '../policy/access.js';
import { callerOf, originOf, requestId } from './caller.js';

const HEARTBEAT_RE = /^\/api\/v1\/instances\/([^/?#]+)\/heartbeat\/?(?:\?.*)?$/;

const idParamSchema = z.object({ id: instanceIdSchema });

const INSTANCES_RE = /^\/api\/v1\/instances\/?(?:\?.*)?$/;

export function isRegister(req: IncomingMessage): boolean {
  return req.method === 'POST' && INSTANCES_RE.test(req.url ?? '');
}

export interface WriteDeps {
  registry: Registry;
  bodyLimitBytes: number;
  /** How long a body may take to arrive (408 after). */
  bodyTimeoutMs?: number;
  logger: Logger;
  guard: InstanceWriteGuard;
  access: AccessControl;
  /**
   * Resolves once the changes so far are durable in the standalone store (operator/store/);
   * a registration is answered only then. Undefined: the registry lives in memory only.
   */
  committed?: () => Promise<void>;
  /** Kubernetes mode: registrations from outside the cluster kept in the API server. */
  kept?: KeptWrites;
}

/**
 * Where the leader keeps registrations from outside the cluster (operator/kube/registrations.ts):
 * a registration is answered once its object is written, a deregistration once it is deleted;
 * either rejects with 503 REGISTRATION_NOT_SAVED, and then nothing changed.
 */
export interface KeptWrites {
  registered(id: string, created: boolean): Promise<void>;
  deregistering(id: string): Promise<void>;
}

export async function registerAnswer(
  deps: WriteDeps,
  req: IncomingMessage,
): Promise<{ status: number; body: string }> {
  const principal = await deps.access.principal(req, 'register', originOf(req));
  const body = registerRequestSchema.safeParse(
    await readJsonBody(req, deps.bodyLimitBytes, deps.bodyTimeoutMs),
  );
  if (!body.success) throw validationError('registration', body.error);
  const service = { namespace: body.data.namespace, name: body.data.service };
  const caller = callerOf(req, principal);
  const { plan, instance, created } = deps.access.audited(
    caller,
    { action: 'register', service },
    () => {
      const plan = deps.guard.register(principal, body.data);
      deps.access.authorizeRegistration(caller, service, plan.kind === 'sidecar');
      if (plan.kind !== 'sidecar') refuseForeignId(deps, caller, body.data);
      const done =
        plan.kind === 'sidecar'
          ? deps.registry.attachSidecar(plan.id, body.data)
          : registerWithinLimits(deps, body.data, { by: principal.who, reqId: requestId(req) });
      return { plan, ...done };
    },
  );
  // Kubernetes mode: in the API server before it is acknowledged (or taken back: 503).
  if (plan.kind !== 'sidecar' && deps.kept !== undefined)
    await deps.kept.registered(instance.id, created);
  if (created) deps.access.allowed(caller, 'register', `instance ${instance.id}`);
  deps.logger.info(
    {
      reqId: requestId(req),
      instance: instance.id,
      kind: 'MaxineService',
      namespace: instance.service.namespace,
      name: instance.service.name,
      host: instance.host,
      port: instance.port,
      created,
      by: principal.who,
      ...(plan.kind === 'sidecar' && { pod: plan.identity.pod?.name }),
    },
    created ? 'instance registered' : 'instance renewed',
  );
  if (deps.committed !== undefined) await deps.committed();
  return { status: created ? 201 : 200, body: JSON.stringify({ instance }) };
}

const LIMIT_CODES: ReadonlySet<string> = new Set([
  'LIMIT_EXCEEDED',
  'METADATA_TOO_LARGE',
  'TOO_MANY_PORTS',
]);

/**
 * A registration, counted against its caller's per-principal limit under the name audit
 * records use; a refusal by a limit is logged with who and which limit.
 */
function registerWithinLimits(
  deps: Pick<WriteDeps, 'registry' | 'logger'>,
  body: RegisterRequest,
  who: { by: string; reqId: string | undefined },
): RegisterResult {
  try {
    return deps.registry.register(body, who.by);
  } catch (err) {
    if (err instanceof MaxineError && LIMIT_CODES.has(err.code)) {
      deps.logger.info(
        {
          ...who,
          kind: 'MaxineService',
          namespace: body.namespace,
          name: body.service,
          code: err.code,
          limit: err.details,
        },
        'registration refused by a registry limit',
      );
    }
    throw err;
  }
}

/**
 * Whether `principal` may renew or remove instance `id`: a pod's instance only by its own
 * sidecar, any instance only where the ACLs grant `register` on its service (a sidecar's own
 * pod needs no grant; an ACL deny still stops it). Unknown ids pass, to answer 404. So does
 * (as the same 404) an instance of a service the caller has no right on: the existence and
 * owner of another tenant's instance are not revealed (the refusal is audited).
 */
export function authorizeInstanceWrite(
  deps: Pick<WriteDeps, 'registry' | 'guard' | 'access'>,
  caller: Caller,
  id: string,
  action: string,
): void {
  // Its owner only: a whole Instance (ISO times and all) was built here on every heartbeat.
  const instance = deps.registry.instanceOwner(id);
  if (instance === undefined) return;
  let ownPod = false;
  let refusal: MaxineError | undefined;
  try {
    ownPod = deps.guard.instance(caller.principal, id);
  } catch (err) {
    if (!(err instanceof MaxineError)) throw err;
    refusal = err;
  }
  if (!ownPod) hideUnknowable(deps.access, caller, instance, action);
  const refused = refusal;
  if (refused !== undefined) {
    deps.access.audited(caller, { action, object: `instance ${id}` }, () => {
      throw refused;
    });
  }
  deps.access.authorizeRegistration(caller, instance.service, ownPod);
}

/**
 * Throws the 404 of an unknown id when the caller has no right on the instance's service,
 * after auditing the real reason.
 */
export function hideUnknowable(
  access: AccessControl,
  caller: Caller,
  { id, service }: { id: string; service: ServiceRef },
  action: string,
): void {
  if (access.mayKnow(caller.principal, service)) return;
  access.deny(caller, {
    action,
    object: `instance ${id}`,
    reason: `${caller.principal.who} has no right on service ${service.namespace}/${service.name}; answered as not found`,
    denial: 'acl',
  });
  throw instanceNotFound(id);
}

/** The shape of the ids `instanceId` computes. */
const COMPUTED_ID_RE = /-[0-9a-f]{16}$/;
/** The shape of a pod's instance id (`podInstanceId`); group 1 is the namespace. */
const POD_ID_RE =
  /^([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\.[a-z0-9][-a-z0-9.]*\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$/;

/**
 * A registration naming the id of another service's instance is a conflict. Its owner is
 * named only to a caller that may know that service; anyone else learns only that the id is
 * taken (explicit ids are the caller's choice). An id of the computed form is accepted only
 * as this endpoint's own, and one of a pod's form only in the caller's namespace, so another
 * tenant's computable ids can be neither probed nor squatted.
 */
export function refuseForeignId(
  deps: Pick<WriteDeps, 'registry' | 'access'>,
  caller: Caller,
  body: RegisterRequest,
): void {
  if (body.id === undefined) return;
  const existing = deps.registry.getInstance(body.id);
  const own =
    existing !== undefined &&
    existing.service.namespace === body.namespace &&
    existing.service.name === body.service;
  if (own) return;
  // A computed id names an endpoint of some service; taking one as an explicit id would
  // probe (409 or 201) and squat another tenant's endpoint. Refused whether it is taken or not.
  if (COMPUTED_ID_RE.test(body.id)) {
    if (body.id !== instanceId(body.namespace, body.service, body.host, body.port)) {
      throw new MaxineError(
        'VALIDATION_FAILED',
        `Instance id "${body.id}" has the form of a computed id ({service}-{16 hex}) but is not this endpoint's; leave id out or choose another`,
      );
    }
  }
  // Likewise a pod's instance id, `<namespace>.<pod>.<service>`: taken beforehand by a
  // registration of another namespace, it would keep the pod out of its service.
  const podForm = POD_ID_RE.exec(body.id);
  if (podForm !== null && podForm[1] !== body.namespace) {
    throw new MaxineError(
      'VALIDATION_FAILED',
      `Instance id "${body.id}" has the form of a pod's instance id (<namespace>.<pod>.<service>) in another namespace; choose another id`,
    );
  }
  if (existing === undefined) return;
  const { service } = existing;
  if (deps.access.mayKnow(caller.principal, service)) return; // the registry names the owner
  throw new MaxineError(
    'INSTANCE_CONFLICT',
    `Instance id "${body.id}" is taken by another service; choose another id`,
  );
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
  // Awaited even when known. On a real socket this does not wait for the body: Node's parser
  // calls in from C++ once per head, and the microtasks run before it parses the body that came
  // in the same read, so `req.complete` is still false here (Node 20 and 26; decision 39).
  const principal = await deps.access.principal(req, 'heartbeat', originOf(req));
  const id = heartbeatId(rawId.includes('%') ? decodeURIComponent(rawId) : rawId);
  // One turn of the loop lets the parser finish the read the head came in: a heartbeat's small
  // body is then whole, and read at once from the request's buffer (no listeners, timer or
  // promise of readJsonBody's: a quarter of a heartbeat's garbage). One that is not yet whole
  // is read as any body, with its timer.
  if (!req.complete && hasBody(req)) await nextTurn();
  // No body at all means an empty heartbeat; a JSON `null` is a body, and an invalid one.
  const raw = req.complete
    ? readCompleteJsonBody(req, deps.bodyLimitBytes)
    : await readJsonBody(req, deps.bodyLimitBytes, deps.bodyTimeoutMs);
  const body = raw === undefined ? EMPTY_HEARTBEAT : heartbeatRequestSchema.safeParse(raw);
  if (!body.success) throw validationError('heartbeat', body.error);
  authorizeInstanceWrite(deps, callerOf(req, principal), id, 'heartbeat');
  return JSON.stringify({ instance: deps.registry.heartbeat(id, body.data) });
}

/** Resolves after the I/O of this turn of the event loop (the parser's rest of this read). */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** An empty heartbeat (no body), parsed once. */
const EMPTY_HEARTBEAT = heartbeatRequestSchema.safeParse({});

/**
 * The instance id of a heartbeat's path, validated by the id schema itself (no wrapping
 * object per heartbeat); a refusal is made by the path's schema, so its issues say `id`.
 */
function heartbeatId(id: string): string {
  if (instanceIdSchema.safeParse(id).success) return id;
  const refused = idParamSchema.safeParse({ id });
  if (refused.success) return refused.data.id;
  throw validationError('path', refused.error);
}

export function respondJson(
  res: ServerResponse,
  status: number,
  body: string | Buffer,
  opts: { close?: boolean; head?: boolean; headers?: Record<string, string> } = {},
): void {
  const length = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  const headers = ['content-type', 'application/json', 'content-length', String(length)];
  if (opts.close === true) headers.push('connection', 'close');
  if (opts.headers !== undefined)
    for (const [name, value] of Object.entries(opts.headers)) headers.push(name, value);
  res.writeHead(status, headers);
  if (opts.head === true) res.end();
  else res.end(body);
}
