import { describe, expect, it } from '@jest/globals';
import {
  describeDecision,
  DISCOVER_COLUMNS,
  eventLine,
  GRAPH_COLUMNS,
  STATUS_COLUMNS,
} from './commands.js';
import { render, table } from './format.js';
import { parseSse } from './sse.js';

const services = [
  {
    namespace: 'shop',
    name: 'orders',
    declared: true,
    instances: { total: 4, passing: 3, warning: 0, critical: 1 },
  },
  {
    namespace: 'shop',
    name: 'legacy-billing',
    declared: true,
    blocked: { registration: true, discovery: true, reason: 'replaced by payments' },
    instances: { total: 0, passing: 0, warning: 0, critical: 0 },
  },
];

describe('table', () => {
  it('aligns columns three spaces apart, headers upper case, no trailing blanks', () => {
    expect(table(services, STATUS_COLUMNS, false)).toBe(
      [
        'NAMESPACE   NAME             READY   PASSING   WARNING   CRITICAL',
        'shop        orders           3/4     3         0         1',
        'shop        legacy-billing   0/0     0         0         0',
        '',
      ].join('\n'),
    );
  });

  it('adds the wide columns with -o wide', () => {
    const text = table(services, STATUS_COLUMNS, true);
    expect(text.split('\n')[0]).toBe(
      'NAMESPACE   NAME             READY   PASSING   WARNING   CRITICAL   DECLARED   BLOCKED                  REASON',
    );
    expect(text).toContain('registration,discovery   replaced by payments');
    expect(text).toContain('true       <none>                   <none>');
  });

  it('prints the API objects with -o json and -o yaml', () => {
    const data = { services };
    expect(JSON.parse(render('json', data, services, STATUS_COLUMNS))).toEqual(data);
    expect(render('yaml', data, services, STATUS_COLUMNS)).toContain(
      '  - namespace: shop\n    name: orders\n',
    );
  });

  it('shows discovered instances and graph edges', () => {
    const instance = {
      id: 'web-1',
      host: '10.0.0.7',
      port: 8080,
      weight: 1,
      health: 'passing',
      metadata: {},
      zone: 'a',
    };
    expect(table([instance], DISCOVER_COLUMNS, true)).toBe(
      'ID      ADDRESS         HEALTH    VERSION   ZONE   DATACENTER   WEIGHT\n' +
        'web-1   10.0.0.7:8080   passing   <none>    a      <none>       1\n',
    );
    const edge = {
      source: 'shop/web',
      destination: 'shop/orders',
      declared: true,
      observed: true,
      allowed: false,
      decidedBy: 'shop/orders',
      rps: 0.1,
      errorRate: 0.0333,
      p99Ms: null,
    };
    expect(table([edge], GRAPH_COLUMNS, true).split('\n')[1]).toBe(
      'shop/web   shop/orders   true       true       false     shop/orders   0.1   0.033        <none>',
    );
  });
});

describe('describeDecision', () => {
  it('says who decides and why, like kubectl describe', () => {
    expect(
      describeDecision({
        source: { namespace: 'bank', name: 'accounts' },
        destination: { namespace: 'bank', name: 'ledger' },
        request: { method: 'POST', path: '/entries' },
        allowed: true,
        decidedBy: { intention: 'bank/ledger', source: 'bank/accounts', permission: 0 },
        reason: 'intention bank/ledger: source bank/accounts allows POST /entries (permission 0)',
      }),
    ).toBe(
      [
        'Source:      bank/accounts',
        'Destination: bank/ledger',
        'Request:     POST /entries',
        'Allowed:     yes',
        'Decided by:  intention bank/ledger, source bank/accounts, permission 0',
        'Reason:      intention bank/ledger: source bank/accounts allows POST /entries (permission 0)',
        '',
      ].join('\n'),
    );
  });

  it('names the default when no intention applies', () => {
    const text = describeDecision({
      source: { namespace: 'a', name: 'b' },
      destination: { namespace: 'a', name: 'c' },
      allowed: false,
      decidedBy: 'default',
      reason: 'no intention applies; the default is deny',
    });
    expect(text).toContain('Allowed:     no\nDecided by:  default\n');
    expect(text).not.toContain('Request:');
  });
});

describe('events', () => {
  const event = {
    seq: 7,
    type: 'service_registered',
    time: '2026-11-27T08:13:47.247Z',
    service: { namespace: 'shop', name: 'web' },
    instance: { id: 'web-1' },
    data: { renewed: false },
  };

  it('prints one line per event; wide adds the sequence and the data', () => {
    expect(eventLine(event, false)).toBe(
      '2026-11-27T08:13:47.247Z  service_registered  shop/web  web-1\n',
    );
    expect(eventLine(event, true)).toBe(
      '7  2026-11-27T08:13:47.247Z  service_registered  shop/web  web-1  {"renewed":false}\n',
    );
    expect(eventLine({ seq: 1, type: 'resync', time: 't' }, false)).toBe('t  resync  -  -\n');
  });

  it('reads Server-Sent Events split anywhere, past comments and ids', () => {
    const got: string[] = [];
    const feed = parseSse((d) => got.push(d));
    const stream =
      'id: e:1\nevent: x\ndata: {"a":1}\n\n: ping\n\nid: e:2\r\ndata: {"b":\r\ndata: 2}\r\n\r\n';
    for (let i = 0; i < stream.length; i += 3) feed(stream.slice(i, i + 3));
    expect(got).toEqual(['{"a":1}', '{"b":\n2}']);
  });
});
