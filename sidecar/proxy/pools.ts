/**
 * Keep-alive connection pools to upstream instances: one node:http Agent per instance (bounded
 * sockets each), at most `maxPools` of them (the least recently used idle one is closed to make
 * room; when every pool is busy a call goes without keep-alive rather than past the bound), and
 * the in-flight count of each instance that least-connections and power-of-two read.
 * `sweep` closes the pools of instances that left the local copy.
 */
import type { Agent } from 'node:http';
import { http } from '../../common/node-http.js';
import type { PoolStats } from './metrics.js';

export interface PoolOptions {
  /** Most pools (instances) kept at once. */
  maxPools?: number;
  /** Most sockets to one instance at once; more calls queue in its pool. */
  maxSocketsPerInstance?: number;
  /** Most idle keep-alive sockets kept per instance. */
  maxIdlePerInstance?: number;
}

export const DEFAULT_MAX_POOLS = 256;
export const DEFAULT_MAX_SOCKETS_PER_INSTANCE = 256;
export const DEFAULT_MAX_IDLE_PER_INSTANCE = 64;

interface Pool {
  readonly agent: Agent;
  readonly instanceId: string;
  /** `namespace/name` of the service, for `sweep`. */
  readonly service: string;
}

export class UpstreamPools {
  /** Insertion order is recency: a used pool is moved to the end. */
  private readonly pools = new Map<string, Pool>();
  private readonly inFlight = new Map<string, number>();
  private readonly maxPools: number;
  private readonly maxSockets: number;
  private readonly maxIdle: number;
  /** Calls that found every pool busy at the bound: no keep-alive, no pool. */
  private readonly overflow = new http.Agent({ keepAlive: false });
  /** For least-connections and power-of-two (`PickContext.load`). */
  readonly load = (instanceId: string): number => this.inFlight.get(instanceId) ?? 0;

  constructor(
    options: PoolOptions = {},
    private readonly onEvict: () => void = () => undefined,
  ) {
    this.maxPools = options.maxPools ?? DEFAULT_MAX_POOLS;
    this.maxSockets = options.maxSocketsPerInstance ?? DEFAULT_MAX_SOCKETS_PER_INSTANCE;
    this.maxIdle = options.maxIdlePerInstance ?? DEFAULT_MAX_IDLE_PER_INSTANCE;
  }

  /** The pool of one instance, created on first use. */
  agentFor(instance: { id: string; host: string; port: number }, service: string): Agent {
    const key = `${instance.id}|${instance.host}:${instance.port}`;
    const pool = this.pools.get(key);
    if (pool !== undefined) {
      this.pools.delete(key);
      this.pools.set(key, pool);
      return pool.agent;
    }
    if (this.pools.size >= this.maxPools && !this.evictOneIdle()) return this.overflow;
    const agent = new http.Agent({
      keepAlive: true,
      maxSockets: this.maxSockets,
      maxFreeSockets: this.maxIdle,
      scheduling: 'lifo',
    });
    this.pools.set(key, { agent, instanceId: instance.id, service });
    return agent;
  }

  begin(instanceId: string): void {
    this.inFlight.set(instanceId, (this.inFlight.get(instanceId) ?? 0) + 1);
  }

  end(instanceId: string): void {
    const n = (this.inFlight.get(instanceId) ?? 0) - 1;
    if (n <= 0) this.inFlight.delete(instanceId);
    else this.inFlight.set(instanceId, n);
  }

  /** Closes the idle pools whose instance `alive` no longer knows. */
  sweep(alive: (service: string, instanceId: string) => boolean): number {
    let closed = 0;
    for (const [key, pool] of this.pools) {
      if (alive(pool.service, pool.instanceId) || this.load(pool.instanceId) > 0) continue;
      this.close(key, pool);
      closed++;
    }
    return closed;
  }

  stats(): PoolStats {
    let active = 0;
    let idle = 0;
    for (const { agent } of this.pools.values()) {
      for (const list of Object.values(agent.sockets)) active += list?.length ?? 0;
      for (const list of Object.values(agent.freeSockets)) idle += list?.length ?? 0;
    }
    return { agents: this.pools.size, active, idle };
  }

  get size(): number {
    return this.pools.size;
  }

  destroy(): void {
    for (const [key, pool] of this.pools) this.close(key, pool);
    this.overflow.destroy();
  }

  private evictOneIdle(): boolean {
    for (const [key, pool] of this.pools) {
      if (this.load(pool.instanceId) > 0) continue;
      this.close(key, pool);
      return true;
    }
    return false;
  }

  private close(key: string, pool: Pool): void {
    this.pools.delete(key);
    pool.agent.destroy();
    this.onEvict();
  }
}
