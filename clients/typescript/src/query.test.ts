import { describe, expect, it } from '@jest/globals';
import { eventsQuerySchema } from '../../../common/wire.js';
import { queryOf as discoverQueryOf } from './client.js';
import { queryOf } from './stream.js';
import type { EventQuery } from './stream.js';

describe('event stream query', () => {
  it.each<[EventQuery, string]>([
    [{}, ''],
    [
      { services: ['shop/*', '*/orders'], snapshot: true },
      '?services=shop%2F*%2C*%2Forders&snapshot=true',
    ],
    [
      { types: ['service_registered', 'service_deregistered'] },
      '?types=service_registered%2Cservice_deregistered',
    ],
    [
      { zone: 'z1', metadata: { tier: 'gold', 'a/b': 'x=y' } },
      '?zone=z1&metadata=tier%3Dgold&metadata=a%2Fb%3Dx%3Dy',
    ],
  ])('%j -> %s, which the operator’s schema accepts', (query, expected) => {
    const text = queryOf(query);
    expect(text).toBe(expected);
    // What the operator parses (repeated `metadata` as an array, as its handler collects it).
    const params = new URLSearchParams(text);
    const raw: Record<string, string | string[]> = {};
    for (const key of new Set(params.keys())) {
      const all = params.getAll(key);
      raw[key] = all.length > 1 ? all : all[0]!;
    }
    expect(eventsQuerySchema.safeParse(raw).success).toBe(true);
  });
});

describe('discover query', () => {
  it.each([
    [{}, {}],
    [
      { strategy: 'consistent-hash' as const, key: 'u1' },
      { strategy: 'consistent-hash', key: 'u1' },
    ],
    [
      { zone: 'z', metadata: { tier: 'gold' } },
      { zone: 'z', 'meta.tier': 'gold' },
    ],
  ])('%j -> %j', (options, expected) => {
    expect(discoverQueryOf(options)).toEqual(expected);
  });
});
