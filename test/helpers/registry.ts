/** A registry on a manual clock with the options the unit tests share, and the events it emits. */
import { ManualClock } from '../../operator/registry/clock.js';
import { Registry } from '../../operator/registry/registry.js';
import type { RegistryEventDraft, RegistryOptions } from '../../operator/registry/registry.js';

export function testRegistry(overrides: Partial<RegistryOptions> = {}): {
  registry: Registry;
  clock: ManualClock;
  events: RegistryEventDraft[];
} {
  const clock = overrides.clock instanceof ManualClock ? overrides.clock : new ManualClock();
  const events: RegistryEventDraft[] = [];
  const registry = new Registry({
    clock,
    emit: (e) => events.push(e),
    allowUndeclared: true,
    defaultTtlSeconds: 30,
    defaultRemoveAfterSeconds: 60,
    massExpiryThreshold: 0.5,
    massExpiryMinInstances: 4,
    ...overrides,
  });
  return { registry, clock, events };
}
