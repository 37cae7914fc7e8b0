/**
 * A registration ↔ its MaxineRegistration object (docs/decisions/0019). Pure: the I/O is in
 * registrations.ts. The object's name derives from the instance id, so every replica names
 * the same registration alike; what is read back is parsed with the zod schema the CRD is
 * generated from, and an object that does not parse (or whose name is not its id's) is
 * refused with the reasons, never applied.
 */
import { createHash } from 'node:crypto';
import { formatPath } from '../../common/errors.js';
import { API_GROUP_VERSION } from '../../common/resources.js';
import {
  maxineRegistrationSchema,
  REGISTRATION_KIND,
} from '../../common/resources-registration.js';
import type { RegistrationSpec, RegistrationStatus } from '../../common/resources-registration.js';
import type { KeptRegistration } from '../registry/registry.js';

/** The label every MaxineRegistration carries: the service it belongs to. */
export const SERVICE_LABEL = 'maxine.io/service';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'maxine-operator';

const DNS_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * The object name of instance `id`: the id itself when it is a valid object name (lower-case
 * DNS-1123 subdomain: computed ids `{service}-{16 hex}` are), else `reg-` and 40 hex of its
 * SHA-256 (ids may hold upper case, `_` and `:`; spec.id keeps the id as given).
 */
export function objectNameOf(id: string): string {
  if (id.length <= 253 && DNS_SUBDOMAIN_RE.test(id)) return id;
  return `reg-${createHash('sha256').update(id).digest('hex').slice(0, 40)}`;
}

/** The status of a registration that is passing with its lease held: what "no status" means. */
export const DEFAULT_STATUS: RegistrationStatus = { health: 'passing', leaseLapsed: false };

export interface RegistrationObject {
  apiVersion: typeof API_GROUP_VERSION;
  kind: typeof REGISTRATION_KIND;
  metadata: {
    name: string;
    namespace: string;
    labels: Record<string, string>;
    ownerReferences?: {
      apiVersion: string;
      kind: string;
      name: string;
      uid: string;
    }[];
  };
  spec: RegistrationSpec;
}

/**
 * The object of a registration, without status (the status subresource is written apart).
 * `serviceUid`: the MaxineService's uid, when declared, so deleting the service garbage-collects
 * its registrations.
 */
export function objectOf(k: KeptRegistration, serviceUid?: string): RegistrationObject {
  return {
    apiVersion: API_GROUP_VERSION,
    kind: REGISTRATION_KIND,
    metadata: {
      name: objectNameOf(k.id),
      namespace: k.namespace,
      labels: { [SERVICE_LABEL]: k.service, [MANAGED_BY_LABEL]: MANAGED_BY },
      ...(serviceUid !== undefined && {
        ownerReferences: [
          {
            apiVersion: API_GROUP_VERSION,
            kind: 'MaxineService',
            name: k.service,
            uid: serviceUid,
          },
        ],
      }),
    },
    spec: specOf(k),
  };
}

export function specOf(k: KeptRegistration): RegistrationSpec {
  return {
    id: k.id,
    service: k.service,
    host: k.host,
    port: k.port,
    ...(k.ports !== undefined && { ports: k.ports }),
    ...(k.version !== undefined && { version: k.version }),
    ...(k.zone !== undefined && { zone: k.zone }),
    ...(k.datacenter !== undefined && { datacenter: k.datacenter }),
    weight: k.weight,
    ...(Object.keys(k.metadata).length > 0 && { metadata: k.metadata }),
    ttlSeconds: Math.max(1, Math.round(k.ttlMs / 1000)),
    ...(k.owner !== undefined && { owner: k.owner }),
    registeredAt: new Date(k.registeredAt).toISOString(),
  };
}

export function statusOf(k: KeptRegistration): RegistrationStatus {
  return {
    health: k.check.status,
    ...(k.check.output !== undefined && { output: k.check.output }),
    leaseLapsed: k.leaseLapsed,
  };
}

export type ReadBack =
  | { ok: true; kept: KeptRegistration; content: string }
  | { ok: false; name: string; namespace: string; message: string };

/** What an object read from the API server holds, or why it is refused. */
export function readObject(raw: unknown): ReadBack {
  const meta = (raw as { metadata?: { name?: unknown; namespace?: unknown } } | null)?.metadata;
  const where = {
    name: typeof meta?.name === 'string' ? meta.name : '?',
    namespace: typeof meta?.namespace === 'string' ? meta.namespace : '?',
  };
  const parsed = maxineRegistrationSchema.safeParse(raw);
  if (!parsed.success) {
    const message = parsed.error.issues
      .map((i) => `${formatPath(i.path)}: ${i.message}`)
      .join('; ');
    return { ok: false, ...where, message };
  }
  const { metadata, spec, status } = parsed.data;
  const expected = objectNameOf(spec.id);
  if (metadata.name !== expected) {
    return {
      ok: false,
      ...where,
      message: `metadata.name: must be "${expected}", the name of spec.id "${spec.id}"`,
    };
  }
  return {
    ok: true,
    kept: keptOf(metadata.namespace, spec, status),
    content: contentOf(spec, status),
  };
}

/** The registration an object's spec and status describe. */
function keptOf(
  namespace: string,
  spec: RegistrationSpec,
  status: RegistrationStatus | undefined,
): KeptRegistration {
  const s = status ?? DEFAULT_STATUS;
  return {
    id: spec.id,
    namespace,
    service: spec.service,
    host: spec.host,
    port: spec.port,
    ...(spec.ports !== undefined && { ports: spec.ports }),
    ...(spec.version !== undefined && { version: spec.version }),
    ...(spec.zone !== undefined && { zone: spec.zone }),
    ...(spec.datacenter !== undefined && { datacenter: spec.datacenter }),
    weight: spec.weight,
    metadata: spec.metadata ?? {},
    ...(spec.owner !== undefined && { owner: spec.owner }),
    registeredAt: Date.parse(spec.registeredAt),
    ttlMs: spec.ttlSeconds * 1000,
    check: { status: s.health, ...(s.output !== undefined && { output: s.output }) },
    leaseLapsed: s.leaseLapsed,
  };
}

/**
 * A comparable form of what an object holds (spec and status, keys sorted: the API server
 * hands fields back in its own order; no status means the default one).
 */
export function contentOf(spec: RegistrationSpec, status: RegistrationStatus | undefined): string {
  return canonical({ spec, status: status ?? DEFAULT_STATUS });
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** What the echo filter awaits for a delete (contents are JSON: never this word). */
export const DELETED = 'deleted';

/** The most writes of one object whose echoes are awaited at once (older ones are forgotten). */
const MAX_AWAITED = 8;

/**
 * Tells the leader's own writes, coming back through its informer, from changes someone else
 * made: each write's content (or `deleted`) is awaited once, in order. An echo, and every
 * older write awaited before it, is consumed; anything else is a foreign change. Bounded:
 * at most MAX_AWAITED per object, and an object's entry goes with its last awaited echo.
 */
export class EchoFilter {
  private readonly awaited = new Map<string, string[]>();

  wrote(id: string, content: string): void {
    const list = this.awaited.get(id) ?? [];
    list.push(content);
    if (list.length > MAX_AWAITED) list.shift();
    this.awaited.set(id, list);
  }

  /** Whether `content` (or DELETED) of object `id` is the echo of a write of ours. */
  isEcho(id: string, content: string): boolean {
    const list = this.awaited.get(id);
    const at = list?.lastIndexOf(content) ?? -1;
    if (list === undefined || at < 0) return false;
    list.splice(0, at + 1);
    if (list.length === 0) this.awaited.delete(id);
    return true;
  }

  /** A write that failed: its echo will not come. */
  cancel(id: string, content: string): void {
    const list = this.awaited.get(id);
    const at = list?.lastIndexOf(content) ?? -1;
    if (list === undefined || at < 0) return;
    list.splice(at, 1);
    if (list.length === 0) this.awaited.delete(id);
  }

  /** How many objects have writes whose echo has not come back. */
  get size(): number {
    return this.awaited.size;
  }

  clear(): void {
    this.awaited.clear();
  }
}
