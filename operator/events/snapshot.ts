/**
 * A resync snapshot as a sequence of bounded messages (pure): `resync_begin`, then
 * `resync_chunk`s of at most `maxBytes` each, then `resync_end` (wire shapes in
 * common/wire.ts). It is a generator: each chunk is serialized only when the previous one
 * has been taken, one instance at a time, so a snapshot never exists as one string (V8
 * limits a string to ~512 MiB, and a snapshot that size would also be copied per client),
 * and the caller can wait for the socket to drain and yield to the event loop between chunks.
 *
 * A chunk exceeds `maxBytes` only when one service's head and a single instance do not fit
 * together, which the wire limits (metadata, ports) keep to tens of KiB, or when a single
 * intention does not fit alone (its spec is bounded: 256 sources).
 *
 * With `policy` given, `resync_begin` carries the cluster's intention default and the
 * intentions follow the services in chunks of their own (`{"services":[],"intentions":[…]}`),
 * so a sidecar swaps its intentions in with the rest of its copy at `resync_end`.
 */
import type { IntentionSpec, ServiceSpec } from '../../common/resources.js';
import type { Instance, ResyncMessage, ServiceSummary } from '../../common/wire.js';
import type { ConfigSecrets } from '../../common/config-sources.js';

export interface SnapshotServiceSource {
  summary: ServiceSummary;
  spec?: ServiceSpec;
  /** The version of `spec.config` (sent with the spec). */
  configVersion?: number;
  /** Config keys whose values come from Secrets: names and digests (sent with the spec). */
  configSecrets?: ConfigSecrets;
  items: Iterable<Instance>;
}

export interface SnapshotPlan {
  seq: number;
  /** The epoch of the log `seq` belongs to. */
  epoch?: string;
  time: string;
  /** The services to send, in order (already filtered by what the subscriber may read). */
  services: readonly { namespace: string; name: string }[];
  /** A service's current content, read when its turn comes; undefined if it is gone. */
  detail(namespace: string, name: string): SnapshotServiceSource | undefined;
  /** The bound on one chunk message, in UTF-8 bytes. */
  maxBytes: number;
  /** The intentions in force the subscriber may see, and the cluster default. */
  policy?: {
    intentionDefault: 'allow' | 'deny';
    intentions: readonly { namespace: string; name: string; spec: IntentionSpec }[];
  };
}

/** JSON of `value` with its last key `items: []` opened: ends with `"items":`. */
function headOf(value: Record<string, unknown>): string {
  const json = JSON.stringify({ ...value, items: [] });
  return json.slice(0, -3);
}

const bytes = (s: string): number => Buffer.byteLength(s, 'utf8');

export function* snapshotMessages(plan: SnapshotPlan): Generator<string, void, undefined> {
  const { seq, time, maxBytes } = plan;
  // The shapes are resyncMessageSchema's (common/wire.ts); envelope.test.ts parses these.
  const envelope = (type: ResyncMessage['type'], data: string): string =>
    `{"seq":${seq},"type":"${type}","time":${JSON.stringify(time)},"data":${data}}`;
  const policy = plan.policy;
  yield envelope(
    'resync_begin',
    JSON.stringify({
      services: plan.services.length,
      ...(policy && { intentionDefault: policy.intentionDefault }),
      ...(plan.epoch !== undefined && { epoch: plan.epoch }),
    }),
  );

  const prefix = `{"seq":${seq},"type":"resync_chunk","time":${JSON.stringify(time)},"data":{"services":[`;
  const suffix = ']}}';
  const frame = bytes(prefix) + bytes(suffix);
  let parts: string[] = [];
  let chunkBytes = frame;
  let chunks = 0;
  let services = 0;
  let instances = 0;

  function* flush(): Generator<string, void, undefined> {
    if (parts.length === 0) return;
    const chunk = prefix + parts.join(',') + suffix;
    parts = [];
    chunkBytes = frame;
    chunks += 1;
    yield chunk;
  }

  for (const ref of plan.services) {
    const detail = plan.detail(ref.namespace, ref.name);
    if (detail === undefined) continue; // deleted since the list was taken
    services += 1;
    let head = headOf(partHead(detail));
    let items: string[] = [];
    // The part as it would be closed now: head + "[" + items + "]}" (+ "," between parts).
    const partBytes = (): number => bytes(head) + 3 + (parts.length > 0 ? 1 : 0);
    let itemBytes = 0;
    const close = (): void => {
      chunkBytes += partBytes() + itemBytes;
      parts.push(`${head}[${items.join(',')}]}`);
      items = [];
      itemBytes = 0;
    };
    if (chunkBytes + partBytes() > maxBytes) yield* flush();
    for (const instance of detail.items) {
      const json = JSON.stringify(instance);
      const add = bytes(json) + (items.length > 0 ? 1 : 0);
      const fits = chunkBytes + partBytes() + itemBytes + add <= maxBytes;
      if (!fits && (parts.length > 0 || items.length > 0)) {
        // Close this service's part here and continue it in the next chunk.
        close();
        yield* flush();
        head = headOf({ namespace: ref.namespace, name: ref.name });
        items.push(json);
        itemBytes = bytes(json);
      } else {
        items.push(json);
        itemBytes += add;
      }
      instances += 1;
    }
    close();
  }
  yield* flush();
  if (policy !== undefined) {
    const intentions = yield* intentionChunks(policy.intentions, prefix, maxBytes);
    chunks += intentions.chunks;
  }
  yield envelope('resync_end', JSON.stringify({ services, chunks, instances }));
}

/** The intentions as chunks of at most `maxBytes` (one alone when it is larger). */
function* intentionChunks(
  intentions: NonNullable<SnapshotPlan['policy']>['intentions'],
  prefix: string,
  maxBytes: number,
): Generator<string, { chunks: number }, undefined> {
  const head = `${prefix}],"intentions":[`;
  const suffix = ']}}';
  const frame = bytes(head) + bytes(suffix);
  let parts: string[] = [];
  let size = frame;
  let chunks = 0;
  for (const i of intentions) {
    const json = JSON.stringify({ namespace: i.namespace, name: i.name, spec: i.spec });
    const add = bytes(json) + (parts.length > 0 ? 1 : 0);
    if (parts.length > 0 && size + add > maxBytes) {
      yield head + parts.join(',') + suffix;
      chunks += 1;
      parts = [];
      size = frame;
    }
    size += bytes(json) + (parts.length > 0 ? 1 : 0);
    parts.push(json);
  }
  if (parts.length > 0) {
    yield head + parts.join(',') + suffix;
    chunks += 1;
  }
  return { chunks };
}

/** A service's first part without its items: summary, and the spec with what goes with it. */
function partHead(detail: SnapshotServiceSource): Record<string, unknown> {
  if (detail.spec === undefined) return { ...detail.summary };
  return {
    ...detail.summary,
    spec: detail.spec,
    ...(detail.configVersion !== undefined && { configVersion: detail.configVersion }),
    ...(detail.configSecrets !== undefined && { configSecrets: detail.configSecrets }),
  };
}
