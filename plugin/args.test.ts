import { describe, expect, it } from '@jest/globals';
import { parseCommand, splitRef } from './args.js';
import { EXIT, PluginError } from './exit-codes.js';

describe('parseCommand', () => {
  it.each([
    [[], { command: 'help' }],
    [['help'], { command: 'help' }],
    [['status', '-h'], { command: 'help' }],
    [
      ['status', '-n', 'shop', '-o', 'wide'],
      { command: 'status', namespace: 'shop', output: 'wide', allNamespaces: false },
    ],
    [['status', '-A'], { command: 'status', allNamespaces: true, output: 'table' }],
    [
      ['discover', 'shop/web', '--all', '-o', 'json'],
      { command: 'discover', service: 'shop/web', all: true, output: 'json' },
    ],
    [
      ['why', 'web', 'bank/ledger', '--method', 'POST', '--path', '/entries'],
      {
        command: 'why',
        source: 'web',
        destination: 'bank/ledger',
        method: 'POST',
        path: '/entries',
      },
    ],
    [['graph', '-o', 'dot'], { command: 'graph', output: 'dot' }],
    [
      ['events', '-f', '--services', 'web,bank/ledger', '--types', 'service_registered'],
      {
        command: 'events',
        follow: true,
        services: ['web', 'bank/ledger'],
        types: ['service_registered'],
      },
    ],
    [['inject-check', 'web-5c7d8-x2x9q'], { command: 'inject-check', pod: 'web-5c7d8-x2x9q' }],
    [
      [
        'status',
        '--operator-namespace',
        'ops',
        '--operator-service',
        'registry',
        '--operator-port',
        'http',
      ],
      {
        command: 'status',
        operatorNamespace: 'ops',
        operatorService: 'registry',
        operatorPort: 'http',
      },
    ],
    [
      ['status', '--server', 'http://127.0.0.1:7710', '--token', 't0k'],
      { command: 'status', server: 'http://127.0.0.1:7710', token: 't0k' },
    ],
  ])('%j', (argv, expected) => {
    expect(parseCommand(argv)).toMatchObject(expected);
  });

  it('defaults the operator to maxine-operator:7710 in maxine-system', () => {
    expect(parseCommand(['status'])).toMatchObject({
      operatorNamespace: 'maxine-system',
      operatorService: 'maxine-operator',
      operatorPort: '7710',
      output: 'table',
    });
  });

  it.each([
    [['bogus'], /unknown command "bogus"/],
    [['discover'], /discover takes SERVICE, got none/],
    [['why', 'a'], /why takes SOURCE DESTINATION, got a/],
    [['status', 'extra'], /status takes no arguments, got extra/],
    [['status', '--nope'], /Unknown option '--nope'/],
    [['status', '-o', 'xml'], /invalid output/],
    [['status', '-o', 'dot'], /invalid output/],
    [['graph', '-o', 'xml'], /invalid output/],
    [['discover', 'Web'], /invalid service: must be NAME or NAMESPACE\/NAME/],
    [['discover', 'a/b/c'], /invalid service/],
    [['why', 'a', 'b', '--method', 'get'], /invalid method: must be an upper-case HTTP method/],
    [['why', 'a', 'b', '--path', 'x'], /invalid path: must start with \//],
    [['status', '-n', 'Shop_1'], /invalid namespace: must be a DNS label/],
    [['status', '--server', 'ftp://x'], /invalid server/],
    [['status', '--all'], /status does not take --all/],
    [['discover', 'web', '--method', 'GET'], /discover does not take --method/],
    [['events', '--types', 'Bad-Type'], /invalid types/],
    [['inject-check', 'UPPER'], /invalid pod/],
  ])('%j is a usage error: %s', (argv, message) => {
    let thrown: unknown;
    try {
      parseCommand(argv);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(PluginError);
    expect((thrown as PluginError).exitCode).toBe(EXIT.usage);
    expect((thrown as PluginError).message).toMatch(message);
  });
});

describe('splitRef', () => {
  it.each([
    ['web', 'shop', { namespace: 'shop', name: 'web' }],
    ['bank/ledger', 'shop', { namespace: 'bank', name: 'ledger' }],
  ])('%s in %s', (ref, ns, expected) => {
    expect(splitRef(ref, ns)).toEqual(expected);
  });
});
