import { describe, expect, it } from '@jest/globals';
import {
  eventsQuerySchema,
  lastEventIdSchema,
  maxineEventSchema,
  wireIntentionSpecSchema,
  wireServiceSpecSchema,
} from './wire.js';

// A spec from a newer operator: fields this version does not know, at several depths.
const newer = {
  ports: [{ name: 'http', port: 8080, appProtocol: 'h2' }],
  loadBalancing: { strategy: 'round-robin', slowStartSeconds: 30 },
  outlierDetection: { consecutiveErrors: 5 },
};

describe('wireServiceSpecSchema', () => {
  it.each([
    ['a top-level field', { outlierDetection: {} }, {}],
    [
      'a field in a nested object',
      { loadBalancing: { strategy: 'random', x: 1 } },
      { loadBalancing: { strategy: 'random' } },
    ],
    [
      'a field in an array item',
      { ports: [{ name: 'http', port: 80, y: 2 }] },
      { ports: [{ name: 'http', port: 80, protocol: 'http' }] },
    ],
    [
      'fields at every depth at once',
      newer,
      {
        ports: [{ name: 'http', port: 8080, protocol: 'http' }],
        loadBalancing: { strategy: 'round-robin' },
      },
    ],
  ])('drops %s a newer operator may send', (_what, input, expected) => {
    expect(wireServiceSpecSchema.parse(input)).toEqual(expected);
  });

  it.each([
    ['a wrong type', { ports: [{ name: 'http', port: 'x' }] }, ['ports', 0, 'port']],
    [
      'a wrong type beside an unknown key',
      { ports: [{ name: 'http', port: 'x', z: 1 }] },
      ['ports', 0, 'port'],
    ],
    [
      'an unknown enum value',
      { loadBalancing: { strategy: 'fastest' } },
      ['loadBalancing', 'strategy'],
    ],
  ])('still refuses %s, at its path', (_what, input, path) => {
    const result = wireServiceSpecSchema.safeParse(input);
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((i) => i.path)).toContainEqual(path);
  });

  it('keeps the unknown keys out of a service_updated event and refuses a bad one with its full path', () => {
    const event = (spec: unknown) => ({
      seq: 1,
      type: 'service_updated',
      time: '2026-12-06T00:00:00.000Z',
      service: { namespace: 'shop', name: 'web' },
      data: { declared: true, generation: 2, blocked: null, spec },
    });
    const ok = maxineEventSchema.parse(event(newer));
    expect(ok.type === 'service_updated' && ok.data.declared && ok.data.spec.loadBalancing).toEqual(
      {
        strategy: 'round-robin',
      },
    );
    const bad = maxineEventSchema.safeParse(event({ ports: [{ name: 'http', port: -1 }] }));
    expect(bad.error?.issues.map((i) => i.path)).toEqual([['data', 'spec', 'ports', 0, 'port']]);
  });
});

describe('wireIntentionSpecSchema: what a newer operator adds cannot widen an allow', () => {
  // A condition this version does not know narrows what it is in; dropped, an `allow` would
  // cover more requests than the operator meant, so what held it denies instead.
  const permissions = [
    { action: 'allow', http: { pathPrefix: '/static', hostExact: 'cdn' } },
    { action: 'allow', http: { pathPrefix: '/health' } },
    { action: 'deny', http: { pathPrefix: '/admin', futureFlag: true } },
  ];
  it.each([
    [
      'in a permission: that permission denies',
      { destination: { name: 'orders' }, sources: [{ name: 'web', permissions }] },
      {
        destination: { name: 'orders' },
        sources: [
          {
            name: 'web',
            permissions: [
              { action: 'deny', http: { pathPrefix: '/static' } },
              { action: 'allow', http: { pathPrefix: '/health' } },
              { action: 'deny', http: { pathPrefix: '/admin' } },
            ],
          },
        ],
      },
    ],
    [
      'in a header condition: its permission denies',
      {
        destination: { name: 'orders' },
        sources: [
          {
            name: 'web',
            permissions: [
              {
                action: 'allow',
                http: { headers: [{ name: 'x-a', exact: 'b', ignoreCase: true }] },
              },
            ],
          },
        ],
      },
      {
        destination: { name: 'orders' },
        sources: [
          {
            name: 'web',
            permissions: [{ action: 'deny', http: { headers: [{ name: 'x-a', exact: 'b' }] } }],
          },
        ],
      },
    ],
    [
      'in a source: all it allows is denied',
      {
        destination: { name: 'orders' },
        sources: [
          { name: 'web', action: 'allow', serviceAccount: 'web' },
          { name: 'api', action: 'allow' },
        ],
      },
      {
        destination: { name: 'orders' },
        sources: [
          { name: 'web', action: 'deny' },
          { name: 'api', action: 'allow' },
        ],
      },
    ],
    [
      'at the top: every source denies',
      {
        destination: { name: 'orders' },
        sources: [
          { name: 'web', action: 'allow' },
          { name: 'api', permissions },
        ],
        when: { hours: '9-17' },
      },
      {
        destination: { name: 'orders' },
        sources: [
          { name: 'web', action: 'deny' },
          {
            name: 'api',
            permissions: [
              { action: 'deny', http: { pathPrefix: '/static' } },
              { action: 'deny', http: { pathPrefix: '/health' } },
              { action: 'deny', http: { pathPrefix: '/admin' } },
            ],
          },
        ],
      },
    ],
  ])('an unknown field %s', (_name, input, expected) => {
    const parsed = wireIntentionSpecSchema.safeParse(input);
    expect(parsed.success).toBe(true);
    expect(parsed.data).toEqual(expected);
  });

  it('leaves a spec it fully knows as it is', () => {
    const spec = { destination: { name: 'orders' }, sources: [{ name: 'web', permissions }] };
    const known = {
      ...spec,
      sources: [{ name: 'web', permissions: [permissions[1]] }],
    };
    expect(wireIntentionSpecSchema.parse(known)).toEqual(known);
  });
});

describe('eventsQuerySchema: filters', () => {
  it.each([
    ['services with ns/* patterns', { services: 'shop/*,*/orders,bank/ledger' }, true],
    ['zone, version, datacenter', { zone: 'eu-1a', version: 'v2.1', datacenter: 'dc1' }, true],
    ['one metadata pair', { metadata: 'tier=gold' }, true],
    ['metadata pairs repeated', { metadata: ['tier=gold', 'example.com/team=pay'] }, true],
    ['a value holding "="', { metadata: 'q=a=b' }, true],
    ['an empty value', { metadata: 'tier=' }, true],
    ['no "="', { metadata: 'tier' }, false],
    ['no key', { metadata: '=gold' }, false],
    ['a key that is no label key', { metadata: 'ti er=gold' }, false],
    ['a key given twice', { metadata: ['tier=gold', 'tier=silver'] }, false],
    ['a key named like an Object method', { metadata: 'constructor=x' }, true],
    ['keys named like Object methods', { metadata: ['toString=a', 'valueOf=b'] }, true],
    ['more than 16 pairs', { metadata: Array.from({ length: 17 }, (_, i) => `k${i}=v`) }, false],
    ['a zone with a space', { zone: 'eu 1' }, false],
    ['an empty version', { version: '' }, false],
    ['an unknown parameter', { region: 'x' }, false],
    ['a bad service pattern', { services: 'shop' }, false],
  ])('%s', (_name, query, ok) => {
    expect(eventsQuerySchema.safeParse(query).success).toBe(ok);
  });

  it('turns metadata pairs into a map', () => {
    expect(eventsQuerySchema.parse({ metadata: ['tier=gold', 'q=a=b'], zone: 'a' })).toMatchObject({
      metadata: { tier: 'gold', q: 'a=b' },
      zone: 'a',
    });
    expect(eventsQuerySchema.parse({ metadata: 'constructor=x' }).metadata).toEqual({
      constructor: 'x',
    });
  });
});

describe('lastEventIdSchema', () => {
  it.each([
    ['EPOCH:SEQ', 'AbC_-9:1795768662560010', { since: 1795768662560010, epoch: 'AbC_-9' }],
    ['a bare seq', '42', { since: 42 }],
    ['an empty epoch', ':42', undefined],
    ['not a number', 'abc:x', undefined],
    ['two colons', 'a:b:1', undefined],
    ['too long a seq', `e:${'9'.repeat(17)}`, undefined],
  ])('%s', (_name, header, expected) => {
    const parsed = lastEventIdSchema.safeParse(header);
    expect(parsed.success ? parsed.data : undefined).toEqual(expected);
  });

  it('parses the slow-consumer marker as a stream message', () => {
    const marker = { seq: 7, type: 'resync', time: 't', data: { reason: 'slow_consumer' } };
    expect(maxineEventSchema.parse(marker)).toEqual(marker);
  });
});
