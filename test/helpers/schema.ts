/** Assertions on zod schemas, for the schema unit tests. */
import { expect } from '@jest/globals';
import { z } from 'zod';

/** The issues a schema finds in `object`, as `path: message` pairs (none when it parses). */
export function issuesOf(schema: z.ZodType, object: unknown): { path: string; message: string }[] {
  const result = schema.safeParse(object);
  if (result.success) return [];
  return result.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
}

/** Fails with the schema's own explanation when `object` does not parse. */
export function expectAccepted(schema: z.ZodType, object: unknown): void {
  const result = schema.safeParse(object);
  expect(result.success ? 'ok' : z.prettifyError(result.error)).toBe('ok');
}
