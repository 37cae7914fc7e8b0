/**
 * What the event-stream tests share: an instance of `shop/web` registered straight into a test
 * operator's registry (so a burst costs no HTTP), and one sample of the operator's metrics.
 */
import { registerRequestSchema } from '../../common/wire.js';
import type { RegisterInput } from '../../common/wire.js';
import type { TestOperator } from './operator.js';

/** Registers an instance (by default `shop/web` at 10.0.0.1:8080, TTL an hour) in `o`'s registry. */
export function register(o: TestOperator, input: Partial<RegisterInput> & { id: string }): void {
  o.operator.registry.register(
    registerRequestSchema.parse({
      service: 'web',
      namespace: 'shop',
      host: '10.0.0.1',
      port: 8080,
      ttlSeconds: 3600,
      ...input,
    }),
  );
}

/** The value of the metrics line that starts with `line` (name and labels), 0 if absent. */
export async function metric(o: TestOperator, line: string): Promise<number> {
  const text = await (await fetch(`${o.url}/metrics`)).text();
  const found = text.split('\n').find((l) => l.startsWith(line + ' '));
  return found === undefined ? 0 : Number(found.slice(line.length + 1));
}
