/**
 * The outbound proxy's engine: forwards one call, received on the path form (sidecar/server.ts)
 * or the forward-proxy listener (./forward-listener.ts), to an instance of its destination.
 *
 * Order of one call (sidecar/proxy/hooks.ts): framing checked (Transfer-Encoding with
 * Content-Length → 400, never forwarded) → the destination looked up in the local copy (404, or
 * 502 on the forward listener) → `authorize` (403) → `rateLimit.take` (429 + Retry-After) →
 * tries: an instance picked by the service's strategy among those the breakers `admit` (503 when
 * none), preferring ones not tried yet → sent with the try's `traceparent` → `breakers.record`
 * → retried when `retryPolicy.retryable` and `retryBudget.tryRetry` both agree → the upstream
 * answer streamed back → `observer.callEnded` once.
 *
 * Bodies stream both ways. A request body is buffered only when its Content-Length is at most
 * `MAX_REPLAY_BYTES` (64 KiB), which is what makes a retry possible; a larger or chunked body is
 * piped to the one try it gets. `requestTimeoutSeconds` bounds the whole call (504
 * `CALL_TIMEOUT`; once the answer has started, the connection is cut instead),
 * `retries.perTryTimeoutSeconds` bounds each try until its response headers (504
 * `UPSTREAM_TIMEOUT`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { http } from '../../common/node-http.js';
import type { ClientRequest } from 'node:http';
import type { Socket } from 'node:net';
import { keyFromRequest } from '../../common/discover-request.js';
import { MaxineError } from '../../common/errors.js';
import type { ErrorCode } from '../../common/errors.js';
import type { Balancer, PickContext } from '../../common/lb/index.js';
import { createVersionedBalancer } from '../../common/lb/versions.js';
import type { Logger } from '../../common/logger.js';
import type { DiscoveredInstance, ServiceRef } from '../../common/wire.js';
import type { ProxyRoute } from '../mirror-state.js';
import { armSocketConnectTimeout, DEFAULT_CONNECT_TIMEOUT_MS } from './connect-timeout.js';
import { endToEndHeaders, endToEndRaw, upstreamRequestHeaders } from './headers.js';
import type {
  AttemptOutcome,
  OutboundRequest,
  ProxyHooks,
  TracedCall,
  TracedTry,
} from './hooks.js';
import { createProxyMetrics, destinationMetrics, UNKNOWN_DESTINATION } from './metrics.js';
import type { DestinationMetrics, ProxyMetrics } from './metrics.js';
import { UpstreamPools } from './pools.js';
import type { PoolOptions } from './pools.js';
import type { ProxyTarget } from './target.js';

/** Largest request body kept in memory so that a failed try can be sent again. */
export const MAX_REPLAY_BYTES = 64 * 1024;
/** Status reported to the observer when the app hung up before its answer ended (nginx's). */
export const CLIENT_CLOSED = 499;
const SWEEP_MS = 30_000;

/** Where the engine reads services: the sidecar's local copy (sidecar/mirror-state.ts). */
export interface RouteSource {
  route(namespace: string, name: string): ProxyRoute | undefined;
}

export interface ProxyEngineOptions {
  routes: RouteSource;
  hooks: ProxyHooks;
  logger: Logger;
  metrics?: ProxyMetrics;
  pools?: PoolOptions;
  /** The pod's zone and datacenter, for locality-aware balancing. */
  localZone?: string;
  localDatacenter?: string;
  /** How long a try may take to connect before it is a `connect-failure` (default 1000). */
  connectTimeoutMs?: number;
  /**
   * The refusal of a destination the local copy does not hold because it is outside the pod's
   * discovery scope (sidecar/scope.ts); undefined: within it (then it is simply unknown).
   */
  outsideScope?: (destination: ServiceRef, fallback: MaxineError) => MaxineError | undefined;
  now?: () => number;
}

/** Which listener received the call: an unknown service is 404 on one, 502 on the other. */
export type ProxyForm = 'path' | 'forward';

export class ProxyEngine {
  readonly metrics: ProxyMetrics;
  readonly pools: UpstreamPools;
  readonly hooks: ProxyHooks;
  readonly logger: Logger;
  readonly now: () => number;
  readonly connectTimeoutMs: number;
  private readonly routes: RouteSource;
  private readonly outsideScope: ProxyEngineOptions['outsideScope'];
  private readonly balancers = new WeakMap<ProxyRoute, Balancer<DiscoveredInstance>>();
  private readonly localZone: string | undefined;
  private readonly localDatacenter: string | undefined;
  private readonly sweeper: NodeJS.Timeout;
  private readonly destinationMetrics = new Map<string, DestinationMetrics>();
  private readonly ctx: PickContext;

  constructor(options: ProxyEngineOptions) {
    this.routes = options.routes;
    this.outsideScope = options.outsideScope;
    this.hooks = options.hooks;
    this.logger = options.logger;
    this.now = options.now ?? Date.now;
    this.connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.localZone = options.localZone;
    this.localDatacenter = options.localDatacenter;
    this.metrics = options.metrics ?? createProxyMetrics();
    this.pools = new UpstreamPools(options.pools, () => this.metrics.evictions.inc());
    this.metrics.poolStats = () => this.pools.stats();
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS).unref();
    this.ctx = {
      key: undefined,
      localZone: this.localZone,
      localDatacenter: this.localDatacenter,
      load: this.pools.load,
    };
  }

  /**
   * Forwards one call and answers it; never throws and leaves no promise behind: every failure
   * becomes an answer (or a cut connection once the answer has started) and a log line.
   */
  handle(req: IncomingMessage, res: ServerResponse, target: ProxyTarget, form: ProxyForm): void {
    const started = this.now();
    const route = this.routes.route(target.destination.namespace, target.destination.name);
    const ref = refString(target.destination);
    const label = route === undefined ? UNKNOWN_DESTINATION : ref;
    const refusal = framingError(req) ?? this.refusal(target, route, form, ref);
    if (refusal !== undefined || route === undefined) {
      const error = refusal ?? new MaxineError('INTERNAL');
      this.settle(label, started, error.status);
      this.hooks.observer.callEnded({
        destination: target.destination,
        status: error.status,
        durationMs: this.now() - started,
        tries: 0,
        refusedBy: error.code,
      });
      // A body whose length is uncertain cannot be skipped safely: no more requests on it.
      if (error.code === 'AMBIGUOUS_MESSAGE_LENGTH') res.shouldKeepAlive = false;
      answerError(res, error);
      return;
    }
    const call = new Call(this, { req, res, target, route, label, started });
    try {
      call.run();
    } catch (err) {
      call.crashed(err);
    }
  }

  /** The answer refusing the call before any try, if it is refused. */
  private refusal(
    target: ProxyTarget,
    route: ProxyRoute | undefined,
    form: ProxyForm,
    ref: string,
  ): MaxineError | undefined {
    if (route === undefined) {
      const unknown =
        form === 'forward'
          ? new MaxineError(
              'UNKNOWN_PROXY_HOST',
              `Host "${target.authority}" is not a Maxine service known to this sidecar (${ref}); the sidecar forwards only to services`,
              { host: target.authority },
            )
          : new MaxineError('SERVICE_NOT_FOUND', `Service ${ref} is not registered`);
      return this.outsideScope?.(target.destination, unknown) ?? unknown;
    }
    const blocked = route.spec?.blocked;
    if (blocked?.discovery === true) {
      return new MaxineError('SERVICE_BLOCKED', `Service ${ref} is blocked: ${blocked.reason}`, {
        reason: blocked.reason,
      });
    }
    return undefined;
  }

  /** Policy asked before the first try: intentions, then the destination's rate limit. */
  policyRefusal(outbound: OutboundRequest, route: ProxyRoute): MaxineError | undefined {
    const decision = this.hooks.authorizer.authorize(outbound);
    if (!decision.allowed) {
      return new MaxineError('INTENTION_DENIED', decision.reason, {
        ...(decision.intention !== undefined && { intention: decision.intention }),
      });
    }
    const rate = this.hooks.rateLimiter.take(
      outbound.destination,
      route.spec?.rateLimit,
      this.now(),
    );
    if (!rate.ok) {
      const seconds = Math.max(1, Math.ceil(rate.retryAfterSeconds));
      return new MaxineError(
        'RATE_LIMITED',
        `Calls to ${refString(outbound.destination)} are over its rate limit; retry in ${seconds} s`,
        { retryAfterSeconds: seconds },
      );
    }
    return undefined;
  }

  /**
   * An instance for the next try: the strategy's pick when the breakers admit it and it was not
   * tried yet, else the next admitted untried one, else an admitted tried one. `open` when the
   * service has instances but no breaker admits any; undefined when it has none.
   */
  pick(
    route: ProxyRoute,
    req: IncomingMessage,
    tried: ReadonlySet<string>,
  ): DiscoveredInstance | 'open' | undefined {
    const first = this.balancerOf(route).pick(this.pickContext(route, req));
    // The route is the service's reference (namespace and name).
    const ref: ServiceRef = route;
    const spec = route.spec?.circuitBreaker;
    const now = this.now();
    const breakers = this.hooks.breakers;
    // The common case allocates nothing: the strategy's pick, fresh and admitted.
    if (first !== undefined && !tried.has(first.id) && breakers.admit(ref, first.id, spec, now)) {
      return first;
    }
    const admitted = (i: DiscoveredInstance): boolean => breakers.admit(ref, i.id, spec, now);
    // Then the others from the pick on (so retries spread like the strategy), untried first.
    const all = route.instances;
    const at = first === undefined ? -1 : all.indexOf(first);
    const order = [...all.slice(at + 1), ...all.slice(0, at + 1)].filter(
      (i) => i.weight > 0 && i !== first,
    );
    if (order.length === 0 && first === undefined) return undefined;
    return (
      order.find((i) => !tried.has(i.id) && admitted(i)) ??
      (first !== undefined && tried.has(first.id) && admitted(first) ? first : undefined) ??
      order.find((i) => tried.has(i.id) && admitted(i)) ??
      'open'
    );
  }

  private balancerOf(route: ProxyRoute): Balancer<DiscoveredInstance> {
    let balancer = this.balancers.get(route);
    if (balancer === undefined) {
      const lb = route.spec?.loadBalancing;
      // Canary weights (`spec.versions`) split calls exactly as they split discovery answers.
      balancer = createVersionedBalancer(
        lb?.strategy ?? 'round-robin',
        route.instances,
        { virtualNodes: lb?.virtualNodes },
        { versions: route.spec?.versions, versionOf: (i) => i.version },
      );
      this.balancers.set(route, balancer);
    }
    return balancer;
  }

  private pickContext(route: ProxyRoute, req: IncomingMessage): PickContext {
    // One context reused for every pick (picks are synchronous), as common/discovery.ts does.
    const source = route.spec?.loadBalancing?.hashKey;
    this.ctx.key = source === undefined ? undefined : keyFromRequest(req, source);
    return this.ctx;
  }

  metricsOf(destination: string): DestinationMetrics {
    return destinationMetrics(this.metrics, this.destinationMetrics, destination);
  }

  /** Metrics of an ended call. */
  settle(label: string, started: number, status: number): void {
    const m = this.metricsOf(label);
    m.call(status);
    m.duration.observe((this.now() - started) / 1000);
  }

  /** Closes the pools of instances the local copy no longer holds. */
  sweep(): number {
    return this.pools.sweep((service, instanceId) => {
      const slash = service.indexOf('/');
      const route = this.routes.route(service.slice(0, slash), service.slice(slash + 1));
      return route?.instances.some((i) => i.id === instanceId) === true;
    });
  }

  close(): void {
    clearInterval(this.sweeper);
    this.pools.destroy();
  }
}

interface CallInput {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly target: ProxyTarget;
  readonly route: ProxyRoute;
  readonly label: string;
  readonly started: number;
}

/** What one try came to: an outcome, and the upstream response when there is one. */
interface TryResult {
  readonly outcome: AttemptOutcome;
  readonly response?: IncomingMessage;
  /** The whole call's deadline passed during the try. */
  readonly callTimedOut?: boolean;
  /** The app hung up before the answer: says nothing about the instance. */
  readonly abandoned?: boolean;
}

/**
 * One call in progress: its tries, timers and the single end of it. Driven by callbacks, not an
 * async chain: a call without a body to read, whose first try answers, allocates no promise.
 */
class Call {
  private readonly destination: ServiceRef;
  private readonly tried = new Set<string>();
  private tries = 0;
  /** The body sent on every try (undefined: piped to the one try). */
  private body: Buffer | undefined;
  /** The route's `requestTimeoutSeconds`, when set. */
  private timeout: number | undefined;
  private ended = false;
  clientGone = false;
  callTimedOut = false;
  private deadline: NodeJS.Timeout | undefined;
  /** The try in progress, aborted when the client goes or the call deadline passes. */
  active: Try | undefined;
  /** The upstream answer being streamed back, destroyed on the same occasions. */
  private streaming: IncomingMessage | undefined;
  /** Its status. */
  private status = 0;
  private traced: TracedCall | undefined;
  /** Counted in the in-flight gauge (past the policy checks). */
  private counted = false;
  /** The destination's metrics, looked up once per call. */
  private readonly metrics: DestinationMetrics;

  constructor(
    readonly engine: ProxyEngine,
    readonly input: CallInput,
  ) {
    this.destination = input.target.destination;
    this.metrics = engine.metricsOf(input.label);
  }

  /** Starts the call; may throw (the caller turns that into `crashed`). */
  run(): void {
    const { req, res, route } = this.input;
    const outbound: OutboundRequest = {
      destination: this.destination,
      method: req.method ?? 'GET',
      path: this.input.target.path,
      headers: endToEndHeaders(req.headers),
    };
    this.traced = this.engine.hooks.tracer.startCall(outbound);
    const refusal = this.engine.policyRefusal(outbound, route);
    if (refusal !== undefined) {
      if (refusal.code === 'RATE_LIMITED') {
        res.setHeader('retry-after', String(retryAfterOf(refusal.details)));
      }
      this.fail(refusal);
      return;
    }
    this.metrics.inFlight.inc();
    this.counted = true;
    // Module-level listeners finding the call on the response: no closure per call.
    (res as Tagged<ServerResponse>)[CALL] = this;
    res.on('close', onAppResponseClose);
    const timeout = route.spec?.requestTimeoutSeconds;
    if (timeout !== undefined) {
      this.deadline = setTimeout(onCallDeadline, timeout * 1000, this, timeout);
    }
    this.engine.hooks.retryBudget.onCall(this.destination, this.engine.now());
    this.timeout = timeout;
    // A request without a body (most) goes on without a turn of the event loop.
    const now = bodyWithoutReading(req);
    if (now === PENDING) {
      readReplayable(req)
        .then((body) => this.afterBody(body))
        .catch((err: unknown) => this.crashed(err));
      return;
    }
    this.afterBody(now);
  }

  private afterBody(body: Buffer | undefined): void {
    if (this.ended) return;
    if (this.callTimedOut) {
      this.fail(callTimeout(this.destination, this.timeout ?? 0));
      return;
    }
    this.body = body;
    this.nextTry();
  }

  /** Picks an instance and sends the next try; `onTrySettled` continues when it settles. */
  private nextTry(): void {
    const instance = this.engine.pick(this.input.route, this.input.req, this.tried);
    if (instance === undefined || instance === 'open') {
      this.fail(noInstance(this.destination, instance));
      return;
    }
    this.tries++;
    this.tried.add(instance.id);
    this.tryOnce(instance, this.body);
  }

  /** A try settled (called once per try, from an event of its request or a timer). */
  onTrySettled(instance: DiscoveredInstance, result: TryResult): void {
    try {
      this.afterTry(instance, result);
    } catch (err) {
      this.crashed(err);
    }
  }

  private afterTry(instance: DiscoveredInstance, result: TryResult): void {
    const engine = this.engine;
    const route = this.input.route;
    // A try cut short because the app left is no failure of the instance (an unreported
    // half-open probe is presumed lost by the breaker after its probe deadline).
    if (result.abandoned !== true) {
      engine.hooks.breakers.record(
        this.destination,
        instance.id,
        result.outcome,
        route.spec?.circuitBreaker,
        engine.now(),
      );
    }
    this.metrics.tried(result.outcome.kind);
    if (this.ended || this.clientGone) {
      result.response?.destroy();
      this.end(CLIENT_CLOSED);
      return;
    }
    if (this.mayRetry(result, this.body)) {
      result.response?.resume();
      this.nextTry();
      return;
    }
    if (result.response !== undefined) {
      this.stream(result.response);
      return;
    }
    this.fail(tryError(this.destination, result, this.timeout));
  }

  private mayRetry(result: TryResult, body: Buffer | undefined): boolean {
    if (body === undefined || result.callTimedOut === true || this.callTimedOut) return false;
    const engine = this.engine;
    return (
      engine.hooks.retryPolicy.retryable(
        this.input.route.spec?.retries,
        this.input.req.method ?? 'GET',
        result.outcome,
        this.tries,
      ) && engine.hooks.retryBudget.tryRetry(this.destination, engine.now())
    );
  }

  /**
   * Sends one try; `onTrySettled` is called once, at its response headers or its failure, after
   * the try's own clean-up (its connection destroyed and released when it failed). The try's
   * listeners are module functions that find it on the request (no closure per try).
   */
  private tryOnce(instance: DiscoveredInstance, body: Buffer | undefined): void {
    const engine = this.engine;
    const { req, target, route } = this.input;
    const breaker = engine.hooks.breakers.state(this.destination, instance.id);
    const span = this.traced?.startTry({
      instanceId: instance.id,
      host: instance.host,
      port: instance.port,
      attempt: this.tries,
      breaker,
    });
    const headers = upstreamRequestHeaders(req.rawHeaders, req.headers.connection, {
      host: target.authority,
      ...span?.headers,
    });
    engine.pools.begin(instance.id);
    const upstream: ClientRequest = http.request({
      host: instance.host,
      port: instance.port,
      method: req.method,
      path: target.path,
      headers,
      agent: engine.pools.agentFor(instance, refString(this.destination)),
      setHost: false,
    });
    const attempt = new Try(this, instance, upstream, span);
    (upstream as Tagged<ClientRequest>)[TRY] = attempt;
    upstream.on('socket', onUpstreamSocket);
    const perTrySeconds = route.spec?.retries?.perTryTimeoutSeconds;
    if (perTrySeconds !== undefined) {
      attempt.perTry = setTimeout(onPerTryTimeout, perTrySeconds * 1000, attempt, perTrySeconds);
    }
    this.active = attempt;
    upstream.on('response', onUpstreamResponse);
    upstream.on('error', onUpstreamError);
    upstream.on('close', onUpstreamClose);
    if (body !== undefined) upstream.end(body.length > 0 ? body : undefined);
    else {
      req.pipe(upstream);
      req.on('error', () => upstream.destroy());
    }
  }

  /** Streams the upstream answer to the app. */
  private stream(response: IncomingMessage): void {
    const { res } = this.input;
    const status = response.statusCode ?? 502;
    res.writeHead(status, endToEndRaw(response.rawHeaders, response.headers.connection));
    this.streaming = response;
    this.status = status;
    // pipe() and module-level listeners rather than stream.pipeline: pipeline allocates an
    // AbortSignal per stream and a DOMException when it ends, 1.5% of the sidecar's CPU under
    // load (profiled with bench/proxy.js). The response's own error and close listeners (set by
    // its try) cut the answer when it breaks: upstream reset mid-answer, or destroyed because the
    // app left or the deadline passed.
    res.on('finish', onAppResponseFinish);
    response.pipe(res);
  }

  /** The streamed answer broke (see `stream`). */
  cut(response: IncomingMessage): void {
    this.streaming = undefined;
    response.destroy();
    this.input.res.destroy();
    this.end(this.callTimedOut ? 504 : this.clientGone ? CLIENT_CLOSED : this.status);
  }

  isStreaming(response: IncomingMessage): boolean {
    return this.streaming === response;
  }

  /** The streamed answer was written whole. */
  finished(): void {
    this.streaming = undefined;
    this.end(this.status);
  }

  /** Aborts the try in progress or the answer being streamed; false when there is neither. */
  private abortActive(): boolean {
    if (this.active !== undefined) {
      this.active.abort();
      return true;
    }
    if (this.streaming !== undefined) {
      this.streaming.destroy();
      return true;
    }
    return false;
  }

  onClientGone(): void {
    this.clientGone = true;
    // Before any try (reading the body, or between tries) there is nothing else to abort.
    if (!this.abortActive() && this.tries === 0) this.end(CLIENT_CLOSED);
  }

  onDeadline(seconds: number): void {
    this.callTimedOut = true;
    const res = this.input.res;
    if (res.headersSent) {
      // The answer has started: the only way left to say "too late" is to cut it.
      this.engine.logger.warn(
        { destination: refString(this.destination), timeoutSeconds: seconds },
        'proxied call exceeded requestTimeoutSeconds while streaming its answer; connection cut',
      );
      this.abortActive();
      res.destroy();
      return;
    }
    // Still reading the request body: answer now; the try loop never starts.
    if (!this.abortActive() && this.tries === 0) {
      this.fail(callTimeout(this.destination, seconds));
    }
  }

  private fail(error: MaxineError): void {
    if (this.ended) return;
    answerError(this.input.res, error);
    this.end(error.status, error.code);
  }

  /** The single end of the call: timers, metrics, span, observer. */
  private end(status: number, refusedBy?: ErrorCode): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.deadline);
    const engine = this.engine;
    const started = this.input.started;
    if (this.counted) this.metrics.inFlight.dec();
    this.metrics.call(status);
    this.metrics.duration.observe((engine.now() - started) / 1000);
    this.traced?.end(status);
    engine.hooks.observer.callEnded({
      destination: this.destination,
      status,
      durationMs: engine.now() - started,
      tries: this.tries,
      ...(refusedBy !== undefined && { refusedBy }),
    });
  }

  crashed(err: unknown): void {
    this.engine.logger.error(
      { err, destination: refString(this.destination) },
      'proxied call failed inside the sidecar',
    );
    if (this.input.res.headersSent) this.input.res.destroy();
    this.fail(new MaxineError('INTERNAL', 'The sidecar failed to forward the call'));
  }
}

/** One try of a call: its upstream request, per-try timer and its single settlement. */
class Try {
  settled = false;
  private released = false;
  perTry: NodeJS.Timeout | undefined;

  constructor(
    readonly call: Call,
    readonly instance: DiscoveredInstance,
    readonly upstream: ClientRequest,
    private readonly span: TracedTry | undefined,
  ) {}

  /** The instance's in-flight count taken back (once). */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.call.engine.pools.end(this.instance.id);
  }

  settle(result: TryResult): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.perTry);
    if (this.call.active === this) this.call.active = undefined;
    this.span?.end(result.outcome);
    this.call.onTrySettled(this.instance, result);
  }

  /** Ends the try with `outcome` unless it settled already: connection destroyed, released. */
  fail(outcome: AttemptOutcome, extra?: Partial<TryResult>): void {
    if (this.settled) return;
    this.upstream.destroy();
    this.release();
    this.settle({ outcome, ...extra });
  }

  /** The call ended (client gone or call deadline) before the answer. */
  abort(): void {
    const call = this.call;
    this.fail(
      { kind: 'timeout', message: 'the call ended before the answer' },
      { callTimedOut: call.callTimedOut, abandoned: call.clientGone && !call.callTimedOut },
    );
  }
}

const TRY = Symbol('maxine.proxy.try');
const CALL = Symbol('maxine.proxy.call');
/** A node object carrying the try or the call its (module-level) listeners belong to. */
type Tagged<T> = T & { [TRY]?: Try; [CALL]?: Call };

function tryOf(emitter: Tagged<ClientRequest | IncomingMessage>): Try {
  return emitter[TRY]!;
}

function onUpstreamSocket(this: ClientRequest, socket: Socket): void {
  // A pooled keep-alive socket is connected already: nothing to time.
  if (!socket.connecting) return;
  const attempt = tryOf(this);
  const ms = attempt.call.engine.connectTimeoutMs;
  armSocketConnectTimeout(socket, ms, () =>
    attempt.fail({ kind: 'connect-failure', message: `no connection within ${ms} ms` }),
  );
}

function onPerTryTimeout(attempt: Try, seconds: number): void {
  attempt.fail({ kind: 'timeout', message: `no answer within ${seconds} s` });
}

function onUpstreamResponse(this: ClientRequest, response: IncomingMessage): void {
  const attempt = tryOf(this);
  (response as Tagged<IncomingMessage>)[TRY] = attempt;
  response.on('close', onUpstreamAnswerClose);
  response.on('error', onUpstreamAnswerError);
  attempt.settle({ outcome: { kind: 'response', status: response.statusCode ?? 502 }, response });
}

function onUpstreamError(this: ClientRequest, err: NodeJS.ErrnoException): void {
  const attempt = tryOf(this);
  attempt.release();
  attempt.settle({ outcome: failureOf(err) });
}

function onUpstreamClose(this: ClientRequest): void {
  const attempt = tryOf(this);
  if (attempt.settled) return;
  attempt.release();
  attempt.settle({ outcome: { kind: 'reset', message: 'the connection closed before an answer' } });
}

function onUpstreamAnswerClose(this: IncomingMessage): void {
  const attempt = tryOf(this);
  attempt.release();
  // Upstream reset mid-answer, or destroyed because the app left or the deadline passed.
  if (!this.complete && attempt.call.isStreaming(this)) attempt.call.cut(this);
}

function onUpstreamAnswerError(this: IncomingMessage): void {
  const attempt = tryOf(this);
  attempt.release();
  if (attempt.call.isStreaming(this)) attempt.call.cut(this);
}

function onAppResponseClose(this: ServerResponse): void {
  if (!this.writableFinished) (this as Tagged<ServerResponse>)[CALL]!.onClientGone();
}

function onAppResponseFinish(this: ServerResponse): void {
  (this as Tagged<ServerResponse>)[CALL]!.finished();
}

function onCallDeadline(call: Call, seconds: number): void {
  call.onDeadline(seconds);
}

/**
 * The body to send on every try when it is small enough to keep (empty when there is none),
 * or undefined when it must be piped to a single try. Never rejects: a client that goes away
 * while sending yields what arrived (the call is ended by the client-gone path).
 */
function readReplayable(req: IncomingMessage): Promise<Buffer | undefined> {
  const now = bodyWithoutReading(req);
  if (now !== PENDING) return Promise.resolve(now);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', () => resolve(Buffer.concat(chunks)));
    req.once('close', () => resolve(Buffer.concat(chunks)));
  });
}

const EMPTY = Buffer.alloc(0);
const PENDING = Symbol('pending');

/**
 * What `readReplayable` resolves to when that is known from the headers alone (no body: empty;
 * chunked or over the bound: undefined), else PENDING: a small body to read.
 */
function bodyWithoutReading(req: IncomingMessage): Buffer | undefined | typeof PENDING {
  const length = req.headers['content-length'];
  if (length === undefined) {
    return req.headers['transfer-encoding'] === undefined ? EMPTY : undefined;
  }
  const size = Number(length);
  if (size === 0) return EMPTY;
  if (!(size <= MAX_REPLAY_BYTES)) return undefined;
  return PENDING;
}

/**
 * Request smuggling guard: a message with both Transfer-Encoding and Content-Length, or a
 * transfer coding other than `chunked`, is refused (node's parser refuses the first already;
 * this holds even with a lenient parser).
 */
function framingError(req: IncomingMessage): MaxineError | undefined {
  const te = req.headers['transfer-encoding'];
  if (te === undefined) return undefined;
  if (req.headers['content-length'] !== undefined) {
    return new MaxineError(
      'AMBIGUOUS_MESSAGE_LENGTH',
      'The request has both Transfer-Encoding and Content-Length; send one of them',
    );
  }
  if (te.trim().toLowerCase() !== 'chunked') {
    return new MaxineError(
      'AMBIGUOUS_MESSAGE_LENGTH',
      `Transfer-Encoding "${te.slice(0, 64)}" is not supported by the proxy; use chunked`,
    );
  }
  return undefined;
}

/** An upstream socket error as an attempt outcome. */
export function failureOf(err: NodeJS.ErrnoException): AttemptOutcome {
  const connect = new Set([
    'ECONNREFUSED',
    'EHOSTUNREACH',
    'ENETUNREACH',
    'EADDRNOTAVAIL',
    'ENOTFOUND',
    'EAI_AGAIN',
    'ETIMEDOUT',
  ]);
  if (err.code !== undefined && connect.has(err.code)) {
    return { kind: 'connect-failure', message: `${err.code}: ${err.message}` };
  }
  return {
    kind: 'reset',
    message: err.code !== undefined ? `${err.code}: ${err.message}` : err.message,
  };
}

function tryError(
  destination: ServiceRef,
  result: TryResult,
  callTimeoutSeconds: number | undefined,
): MaxineError {
  const ref = refString(destination);
  const outcome = result.outcome;
  if (result.callTimedOut === true) return callTimeout(destination, callTimeoutSeconds ?? 0);
  switch (outcome.kind) {
    case 'connect-failure':
      return new MaxineError(
        'UPSTREAM_CONNECT_FAILED',
        `Could not connect to an instance of ${ref}: ${outcome.message}`,
      );
    case 'reset':
      return new MaxineError(
        'UPSTREAM_RESET',
        `An instance of ${ref} closed the connection before answering: ${outcome.message}`,
      );
    case 'timeout':
      return new MaxineError(
        'UPSTREAM_TIMEOUT',
        `An instance of ${ref} did not answer within retries.perTryTimeoutSeconds (${outcome.message})`,
      );
    default:
      return new MaxineError('INTERNAL', `Unexpected outcome of a call to ${ref}`);
  }
}

function callTimeout(destination: ServiceRef, seconds: number): MaxineError {
  return new MaxineError(
    'CALL_TIMEOUT',
    `The call to ${refString(destination)} took longer than its requestTimeoutSeconds (${seconds} s)`,
  );
}

function noInstance(destination: ServiceRef, why: 'open' | undefined): MaxineError {
  const ref = refString(destination);
  return why === 'open'
    ? new MaxineError(
        'CIRCUIT_OPEN',
        `Every instance of ${ref} has an open circuit breaker; retry later`,
      )
    : new MaxineError('NO_UPSTREAM_INSTANCE', `Service ${ref} has no healthy instance to call`);
}

function retryAfterOf(details: unknown): number {
  const seconds = (details as { retryAfterSeconds?: number } | undefined)?.retryAfterSeconds;
  return typeof seconds === 'number' ? seconds : 1;
}

export function refString(ref: ServiceRef): string {
  return `${ref.namespace}/${ref.name}`;
}

/** A catalog error as the JSON answer; when the answer has started, the connection is cut. */
export function answerError(res: ServerResponse, error: MaxineError): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(error.toBody());
  res.writeHead(error.status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}
