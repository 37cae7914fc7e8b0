/**
 * The ConfigMaps and Secrets that MaxineServices name in `spec.configFrom`, watched one object
 * at a time (a list + watch with `fieldSelector=metadata.name=...` in its namespace): the
 * operator holds only what is referenced, never every ConfigMap or Secret of the cluster. A
 * watch starts when the first service names an object and stops when the last one no longer
 * does. At most `maxObjects` objects are watched; a reference past that is refused (counted,
 * logged once, and treated as a missing object) until a stopped watch makes room. Of a Secret
 * only a digest per key is kept (common/config-sources.ts): its values are dropped as soon as
 * they are digested, and never logged (docs/decisions/0023-config-from-secrets.md).
 */
import { CoreV1Api, ListWatch, Observable, ResponseContext, Watch } from '@kubernetes/client-node';
import type {
  KubeConfig,
  KubernetesListObject,
  KubernetesObject,
  ObservableMiddleware,
} from '@kubernetes/client-node';
import { Counter, Gauge } from 'prom-client';
import type { Registry as PromRegistry } from 'prom-client';
import { nullMap, secretDigest } from '../../common/config-sources.js';
import type { ResolvedSource, SourceKind } from '../../common/config-sources.js';
import type { Logger } from '../../common/logger.js';
import { kubeErrorFields } from './errors.js';

export interface ConfigSourceWatcherOptions {
  kubeConfig: KubeConfig;
  logger: Logger;
  /** Objects watched at most (`--config-from-max-objects`). */
  maxObjects: number;
  /** An object changed, appeared or went: the services naming it resolve their config again. */
  onChange: (namespace: string, kind: SourceKind, name: string) => void;
  /** A watch stopped: a service whose reference was refused for the bound may now get one. */
  onRoom?: (namespace: string, service: string) => void;
  /** How long `ensure` waits for a new object's first list. */
  firstListMs?: number;
  restartBaseMs?: number;
  restartMaxMs?: number;
}

interface Watched {
  readonly namespace: string;
  readonly kind: SourceKind;
  readonly name: string;
  readonly users: Set<string>;
  resolved: ResolvedSource | undefined;
  listed: Promise<void>;
  stop: () => Promise<void>;
  /** The informer's copy of the object (what the operator holds of it). */
  cached: () => KubernetesObject | undefined;
  restarts: number;
  stopped: boolean;
}

type ObjectWithData = KubernetesObject & {
  data?: Record<string, string>;
  binaryData?: Record<string, string>;
};

const objectKey = (namespace: string, kind: SourceKind, name: string): string =>
  `${kind}/${namespace}/${name}`;

/** What the operator keeps of a listed or watched object (pure; exported for tests). */
export function resolvedOf(kind: SourceKind, object: ObjectWithData): ResolvedSource {
  // Null-prototype maps: a key named `__proto__` stays data (the merge refuses it by name).
  if (kind === 'ConfigMap') return { kind, data: nullMap(Object.entries(object.data ?? {})) };
  const uid = object.metadata?.uid ?? '';
  const digests = nullMap<string>();
  for (const [key, base64] of Object.entries(object.data ?? {}))
    digests[key] = secretDigest(uid, Buffer.from(base64, 'base64'));
  return { kind, digests };
}

/**
 * A per-call middleware keeping the body of a list as the API server sent it. The typed client
 * copies each `data` map into a plain object, where a key named `__proto__` (valid in a
 * ConfigMap or Secret) is dropped without a word; a watch event (JSON.parse) keeps it. The
 * listed objects take their `data` from the body, so both paths hold the same keys.
 */
function rawBody(): {
  options: { middleware: ObservableMiddleware[]; middlewareMergeStrategy: 'append' };
  text: () => string | undefined;
} {
  let body: string | undefined;
  const keep = async (context: ResponseContext): Promise<ResponseContext> => {
    const text = await context.body.text();
    body = text;
    return new ResponseContext(context.httpStatusCode, context.headers, {
      text: () => Promise.resolve(text),
      binary: () => Promise.resolve(Buffer.from(text)),
    });
  };
  const middleware: ObservableMiddleware = {
    pre: (context) => new Observable(Promise.resolve(context)),
    post: (context) => new Observable(keep(context)),
  };
  return {
    options: { middleware: [middleware], middlewareMergeStrategy: 'append' },
    text: () => body,
  };
}

/** Gives each listed object the `data` map of the same object in the raw body (same order). */
function withRawData(
  listed: KubernetesListObject<KubernetesObject>,
  body: string | undefined,
): void {
  if (body === undefined) return;
  let parsed: { items?: { metadata?: { name?: string }; data?: unknown }[] };
  try {
    parsed = JSON.parse(body) as typeof parsed;
  } catch {
    return;
  }
  for (const [i, item] of listed.items.entries()) {
    const raw = parsed.items?.[i];
    if (raw?.metadata?.name !== item.metadata?.name) continue;
    const data = raw?.data;
    if (typeof data === 'object' && data !== null && !Array.isArray(data))
      (item as ObjectWithData).data = data as Record<string, string>;
  }
}

/**
 * `kubectl apply` keeps the whole manifest it applied, Secret values included (`data`, or
 * `stringData` in plain text), in this annotation of the object.
 */
const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/** Drops a digested Secret's values from the informer's copy: its data and kubectl's copy of it. */
function forgetValues(object: KubernetesObject): void {
  delete (object as ObjectWithData).data;
  const annotations = object.metadata?.annotations;
  if (annotations !== undefined) delete annotations[LAST_APPLIED];
}

export class ConfigSourceWatcher {
  private readonly watched = new Map<string, Watched>();
  /** Service key (namespace/name) → the object keys it names. */
  private readonly usesOf = new Map<string, Set<string>>();
  /**
   * Object keys refused for the bound → the services that named them: logged once, and those
   * services are tracked again (`onRoom`) when a watch stops and makes room.
   */
  private readonly refused = new Map<string, Set<string>>();
  private readonly core: CoreV1Api;
  private readonly watch: Watch;
  private gauge: Gauge | undefined;
  private refusals: Counter | undefined;
  private closed = false;

  constructor(private readonly opts: ConfigSourceWatcherOptions) {
    this.core = opts.kubeConfig.makeApiClient(CoreV1Api);
    this.watch = new Watch(opts.kubeConfig);
  }

  registerMetrics(prom: PromRegistry): void {
    this.gauge = new Gauge({
      name: 'maxine_config_from_watched_objects',
      help: 'ConfigMaps and Secrets named by configFrom that the operator watches (at most --config-from-max-objects)',
      labelNames: ['kind'] as const,
      registers: [prom],
    });
    for (const w of this.watched.values()) this.gauge.inc({ kind: w.kind });
    this.refusals = new Counter({
      name: 'maxine_config_from_refused_total',
      help: 'configFrom references not watched because --config-from-max-objects was reached',
      registers: [prom],
    });
  }

  /**
   * Makes service `namespace/service` name exactly `refs`: watches start for new objects (and
   * are awaited, bounded by firstListMs, so a first reconcile sees their content) and stop for
   * objects no service names any more.
   */
  async track(
    namespace: string,
    service: string,
    refs: readonly { kind: SourceKind; name: string }[],
  ): Promise<void> {
    const serviceKey = `${namespace}/${service}`;
    const next = new Set(refs.map((r) => objectKey(namespace, r.kind, r.name)));
    const before = this.usesOf.get(serviceKey) ?? new Set<string>();
    for (const key of before) if (!next.has(key)) this.release(key, serviceKey);
    if (next.size === 0) this.usesOf.delete(serviceKey);
    else this.usesOf.set(serviceKey, next);
    const waits: Promise<void>[] = [];
    for (const ref of refs) {
      const watched = this.acquire(namespace, ref.kind, ref.name, serviceKey);
      if (watched !== undefined) waits.push(watched.listed);
    }
    if (waits.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(waits),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.opts.firstListMs ?? 5_000);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
  }

  /** What is known of an object (undefined: absent, not yet listed, or refused). */
  lookup(namespace: string, kind: SourceKind, name: string): ResolvedSource | undefined {
    return this.watched.get(objectKey(namespace, kind, name))?.resolved;
  }

  /** The informer's copy of a watched object (what the operator holds of it). */
  cached(namespace: string, kind: SourceKind, name: string): KubernetesObject | undefined {
    return this.watched.get(objectKey(namespace, kind, name))?.cached();
  }

  /** The services (namespace/name) naming an object. */
  usersOf(namespace: string, kind: SourceKind, name: string): string[] {
    return [...(this.watched.get(objectKey(namespace, kind, name))?.users ?? [])];
  }

  get size(): number {
    return this.watched.size;
  }

  async stop(): Promise<void> {
    this.closed = true;
    const all = [...this.watched.values()];
    this.watched.clear();
    await Promise.all(all.map((w) => this.halt(w)));
  }

  private acquire(
    namespace: string,
    kind: SourceKind,
    name: string,
    serviceKey: string,
  ): Watched | undefined {
    const key = objectKey(namespace, kind, name);
    const known = this.watched.get(key);
    if (known !== undefined) {
      known.users.add(serviceKey);
      return known;
    }
    if (this.closed) return undefined;
    if (this.watched.size >= this.opts.maxObjects) {
      const waiting = this.refused.get(key);
      if (waiting !== undefined) {
        if (waiting.size < 1_000) waiting.add(serviceKey);
      } else {
        // Bounded: forgetting them all past it only logs again (and skips a retry hint).
        if (this.refused.size >= 10_000) this.refused.clear();
        this.refused.set(key, new Set([serviceKey]));
        this.refusals?.inc();
        this.opts.logger.warn(
          { kind, namespace, name, namedBy: serviceKey, limit: this.opts.maxObjects },
          'configFrom object not watched: --config-from-max-objects reached; it counts as missing',
        );
      }
      return undefined;
    }
    this.refused.delete(key);
    const watched = this.start(namespace, kind, name);
    watched.users.add(serviceKey);
    this.watched.set(key, watched);
    this.gauge?.inc({ kind });
    return watched;
  }

  private release(key: string, serviceKey: string): void {
    const watched = this.watched.get(key);
    if (watched === undefined) return;
    watched.users.delete(serviceKey);
    if (watched.users.size > 0) return;
    this.watched.delete(key);
    this.gauge?.dec({ kind: watched.kind });
    void this.halt(watched);
    this.makeRoom();
  }

  /** Tells the services of the oldest refused reference to track again (one slot freed). */
  private makeRoom(): void {
    const first = this.refused.entries().next();
    if (first.done === true) return;
    const [key, services] = first.value;
    this.refused.delete(key);
    for (const service of services) {
      const [namespace = '', name = ''] = service.split('/');
      this.opts.onRoom?.(namespace, name);
    }
  }

  private async halt(watched: Watched): Promise<void> {
    watched.stopped = true;
    await watched.stop().catch(() => undefined);
  }

  private start(namespace: string, kind: SourceKind, name: string): Watched {
    const plural = kind === 'ConfigMap' ? 'configmaps' : 'secrets';
    const fieldSelector = `metadata.name=${name}`;
    const list = async (): Promise<KubernetesListObject<KubernetesObject>> => {
      const raw = rawBody();
      const listed =
        kind === 'ConfigMap'
          ? await this.core.listNamespacedConfigMap({ namespace, fieldSelector }, raw.options)
          : await this.core.listNamespacedSecret({ namespace, fieldSelector }, raw.options);
      withRawData(listed, raw.text());
      return listed;
    };
    const informer = new ListWatch<KubernetesObject>(
      `/api/v1/namespaces/${namespace}/${plural}`,
      this.watch,
      list,
      false,
      undefined,
      fieldSelector,
    );
    let markListed: () => void = () => {};
    const watched: Watched = {
      namespace,
      kind,
      name,
      users: new Set(),
      resolved: undefined,
      listed: new Promise<void>((resolve) => {
        markListed = resolve;
      }),
      stop: () => informer.stop(),
      cached: () => informer.get(name, namespace),
      restarts: 0,
      stopped: false,
    };
    const changed = (object: KubernetesObject): void => {
      if (watched.stopped) return;
      watched.resolved = resolvedOf(kind, object);
      // Of a Secret only the digests stay: the informer's copy loses its values.
      if (kind === 'Secret') forgetValues(object);
      this.opts.onChange(namespace, kind, name);
    };
    informer.on('add', changed);
    informer.on('update', changed);
    informer.on('delete', () => {
      if (watched.stopped) return;
      watched.resolved = undefined;
      this.opts.onChange(namespace, kind, name);
    });
    informer.on('connect', () => {
      watched.restarts = 0;
    });
    informer.on('error', (err: unknown) => {
      markListed();
      this.restartLater(watched, informer, err);
    });
    informer
      .start()
      .then(markListed)
      .catch((err: unknown) => {
        markListed();
        this.restartLater(watched, informer, err);
      });
    return watched;
  }

  private restartLater(
    watched: Watched,
    informer: ListWatch<KubernetesObject>,
    err: unknown,
  ): void {
    if (watched.stopped || this.closed) return;
    watched.restarts += 1;
    const delay = Math.min(
      this.opts.restartMaxMs ?? 30_000,
      (this.opts.restartBaseMs ?? 500) * 2 ** (watched.restarts - 1),
    );
    const { kind, namespace, name } = watched;
    this.opts.logger.warn(
      {
        kind,
        namespace,
        name,
        error: kubeErrorFields(err),
        attempt: watched.restarts,
        retryInMs: delay,
      },
      'configFrom watch failed; restarting',
    );
    setTimeout(() => {
      if (watched.stopped || this.closed) return;
      informer.start().catch((e: unknown) => this.restartLater(watched, informer, e));
    }, delay).unref();
  }
}
