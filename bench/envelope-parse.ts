/**
 * What validating the event stream costs the sidecar: a snapshot of 100k instances (the
 * registry's default limit) in 64 KiB chunks (`--snapshot-chunk-bytes`' default), read with
 * JSON.parse alone and with JSON.parse plus `maxineEventSchema` (what sidecar/mirror.ts
 * does), and a burst of delta events. Run: `npx tsx bench/envelope-parse.ts [instances]`.
 */
import { performance } from 'node:perf_hooks';
import { maxineEventSchema, registerRequestSchema } from '../common/wire.js';
import { snapshotMessages } from '../operator/events/snapshot.js';
import { EventLog } from '../operator/events/log.js';
import { ManualClock } from '../operator/registry/clock.js';
import { Registry } from '../operator/registry/registry.js';

const instances = Number(process.argv[2] ?? 100_000);
const services = Math.max(1, Math.floor(instances / 100));
const clock = new ManualClock(1_700_000_000_000);
const log = new EventLog({ events: 1024, bytes: 64 * 1024 * 1024 }, clock);
const deltas: string[] = [];
const stopRecording = log.subscribe((e) => deltas.push(log.serialized(e)));
const registry = new Registry({
  clock,
  emit: (d) => void log.append(d),
  allowUndeclared: true,
  defaultTtlSeconds: 30,
  defaultRemoveAfterSeconds: 60,
  massExpiryThreshold: 0.5,
  massExpiryMinInstances: 1000,
  limits: { instances, instancesPerService: instances, instancesPerPrincipal: instances },
});
for (let s = 0; s < services; s++)
  registry.upsertService('shop', `svc-${s}`, {
    selector: { app: `svc-${s}` },
    loadBalancing: { strategy: 'round-robin' },
    config: { A: '1' },
  });
for (let i = 0; i < instances; i++) {
  registry.register(
    registerRequestSchema.parse({
      id: `i-${i}`,
      service: `svc-${i % services}`,
      namespace: 'shop',
      host: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
      port: 8080,
      version: 'v1',
      zone: 'zone-a',
      metadata: { pod: `pod-${i}`, team: 'checkout' },
    }),
  );
  if (i === 19_999) stopRecording(); // keep 20k delta events (a burst), not every registration
}
const chunks = [
  ...snapshotMessages({
    seq: log.lastSeq,
    time: new Date(clock.now()).toISOString(),
    services: registry.serviceRefs(),
    detail: (namespace, name) => registry.snapshotOf(namespace, name),
    maxBytes: 64 * 1024,
  }),
];

function time(label: string, texts: readonly string[], validate: boolean): number {
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const start = performance.now();
    for (const text of texts) {
      const message: unknown = JSON.parse(text);
      if (validate && !maxineEventSchema.safeParse(message).success) throw new Error('invalid');
    }
    best = Math.min(best, performance.now() - start);
  }
  console.log(`${label.padEnd(44)} ${best.toFixed(1).padStart(8)} ms`);
  return best;
}

const bytes = chunks.reduce((n, c) => n + Buffer.byteLength(c), 0);
console.log(
  `snapshot: ${instances} instances, ${services} services, ${chunks.length} messages, ${(bytes / 1048576).toFixed(1)} MiB`,
);
const plain = time('snapshot, JSON.parse', chunks, false);
const checked = time('snapshot, JSON.parse + maxineEventSchema', chunks, true);
console.log(
  `  validation: +${(checked - plain).toFixed(1)} ms (${(((checked - plain) / instances) * 1000).toFixed(2)} µs per instance, ${((checked - plain) / Math.max(1, chunks.length - 2)).toFixed(2)} ms per chunk)`,
);
console.log(`deltas: ${deltas.length} events`);
const dPlain = time('deltas, JSON.parse', deltas, false);
const dChecked = time('deltas, JSON.parse + maxineEventSchema', deltas, true);
console.log(
  `  validation: ${(((dChecked - dPlain) / deltas.length) * 1000).toFixed(2)} µs per event`,
);
