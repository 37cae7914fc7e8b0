/**
 * Config versions and history in Redis (`<prefix>:config`: "namespace/name" → the service's
 * record as JSON, common/config-history.ts), for both redis stores. Each record is written as
 * it changes (config changes are rare); a failed write is logged (the version may go back
 * after a restart), never thrown.
 */
import { serviceConfigRecordSchema } from '../../common/config-history.js';
import type { ServiceConfigRecord } from '../../common/config-history.js';
import type { Logger } from '../../common/logger.js';
import type { ConfigHistory } from '../registry/config-history.js';
import type { RedisConnection } from './resp.js';

export class RedisConfigs {
  readonly key: string;
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly redis: RedisConnection,
    prefix: string,
    private readonly logger: Logger,
    private readonly where: Record<string, unknown>,
  ) {
    this.key = `${prefix}:config`;
  }

  /** The kept records; one that is not valid is left out (logged). Throws when Redis does not answer. */
  async load(): Promise<ServiceConfigRecord[]> {
    const raw = await this.redis.command(['HGETALL', this.key]);
    const flat = Array.isArray(raw) ? raw : [];
    const out: ServiceConfigRecord[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const parsed = serviceConfigRecordSchema.safeParse(parseJson(String(flat[i + 1])));
      const [namespace, name] = String(flat[i]).split('/');
      if (parsed.success) out.push(parsed.data);
      else
        this.logger.warn(
          { ...this.where, key: this.key, kind: 'MaxineService', namespace, name },
          'stored config history is not a valid record: left out (its versions start again)',
        );
    }
    return out;
  }

  /** Writes every record now, then each as it changes. */
  keep(history: ConfigHistory): void {
    for (const record of history.all()) this.write(record, record);
    this.unsubscribe = history.subscribe((key, record) => this.write(key, record));
  }

  private write(key: { namespace: string; name: string }, record?: ServiceConfigRecord): void {
    const field = `${key.namespace}/${key.name}`;
    const command =
      record === undefined
        ? ['HDEL', this.key, field]
        : ['HSET', this.key, field, JSON.stringify(record)];
    this.redis.command(command).catch((err: unknown) => {
      this.logger.error(
        {
          err,
          ...this.where,
          key: this.key,
          kind: 'MaxineService',
          namespace: key.namespace,
          name: key.name,
        },
        'config history write to redis failed: its version may go back after a restart',
      );
    });
  }

  stop(): void {
    this.unsubscribe?.();
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
