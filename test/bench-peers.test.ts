/**
 * The wire formats bench/peers.js reads and writes for the peers of `npm run bench`
 * (decision 0028): etcd's gateway (base64 keys, prefix range ends, error answers), Consul's
 * health answers, the versions in the builder modules' go.mod files, and the Maxine ÷ peer
 * figures. Answers are the shapes etcd v3.6.4 and Consul v1.14.11 sent in bench runs.
 */
import { Buffer } from 'node:buffer';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import {
  consulInstances,
  etcdKvs,
  etcdPutBody,
  etcdRangeBody,
  etcdToken,
  peerInstance,
  prefixRangeEnd,
  requiredVersion,
  versus,
} from '../bench/peers-wire.js';

const ROOT = join(import.meta.dirname, '..');
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

describe('prefixRangeEnd (etcd range_end of a prefix read)', () => {
  it.each([
    ['/maxine/bench/api/', [...Buffer.from('/maxine/bench/api0')]],
    ['a', [0x62]],
    ['ab\u00ff', [0x61, 0x62, 0xc3, 0xc0]], // UTF-8 c3 bf: the last byte below 0xff is bf
    ['', [0]],
  ])('%j ends at %j', (prefix, bytes) => {
    expect([...prefixRangeEnd(prefix)]).toEqual(bytes);
  });

  it('works on the UTF-8 bytes: a key never ends in 0xff, so only its last byte changes', () => {
    expect([...prefixRangeEnd('a\u00ff\u00ff')]).toEqual([0x61, 0xc3, 0xbf, 0xc3, 0xc0]);
  });
});

describe('etcd request bodies', () => {
  it('a range read names the prefix and its end in base64', () => {
    expect(JSON.parse(etcdRangeBody('/maxine/bench/api/'))).toEqual({
      key: b64('/maxine/bench/api/'),
      range_end: b64('/maxine/bench/api0'),
    });
  });

  it('a put sends key and value in base64', () => {
    expect(JSON.parse(etcdPutBody('/k/1', '{"host":"10.0.0.1"}'))).toEqual({
      key: b64('/k/1'),
      value: b64('{"host":"10.0.0.1"}'),
    });
  });
});

describe('etcdKvs', () => {
  const header =
    '"header":{"cluster_id":"15118495548433857066", "member_id":"13668033151171901709", "revision":"2", "raft_term":"2"}';
  it.each([
    [
      'two keys',
      `{${header}, "kvs":[{"key":"${b64('/p/a')}", "create_revision":"2", "mod_revision":"2", "version":"1", "value":"${b64('{"port":8080}')}"},{"key":"${b64('/p/b')}","value":"${b64('x')}"}], "count":"2"}`,
      [
        { key: '/p/a', value: '{"port":8080}' },
        { key: '/p/b', value: 'x' },
      ],
    ],
    ['no match (kvs left out)', `{${header}}`, []],
    [
      'an empty value (left out)',
      `{"kvs":[{"key":"${b64('/p/a')}"}]}`,
      [{ key: '/p/a', value: '' }],
    ],
  ])('%s', (_name, text, kvs) => {
    expect(etcdKvs(text)).toEqual(kvs);
  });

  it.each([
    [
      'an error answer',
      '{"code":7, "message":"etcdserver: permission denied"}',
      /error 7: etcdserver: permission denied/,
    ],
    [
      'auth on, no token',
      '{"code":3, "message":"etcdserver: user name is empty"}',
      /user name is empty/,
    ],
    ['a gateway error', '{"error":"bad gateway"}', /bad gateway/],
    ['not JSON', '<html>', /not JSON/],
    ['an array', '[]', /not a JSON object/],
    ['kvs not an array', '{"kvs":{}}', /kvs is not an array/],
    ['a kv without a key', '{"kvs":[{"value":"eA=="}]}', /without a base64 key/],
  ])('throws on %s', (_name, text, message) => {
    expect(() => etcdKvs(text)).toThrow(message);
  });
});

describe('etcdToken', () => {
  it('reads the token of an authenticate answer', () => {
    expect(etcdToken('{"header":{"revision":"2"}, "token":"xGdrrDBSzkfNMSgA.12"}')).toBe(
      'xGdrrDBSzkfNMSgA.12',
    );
  });
  it.each([
    [
      '{"code":3, "message":"etcdserver: authentication failed, invalid user ID or password"}',
      /authentication failed/,
    ],
    ['{"header":{}}', /no token/],
    ['{"token":""}', /no token/],
  ])('throws on %s', (text, message) => {
    expect(() => etcdToken(text)).toThrow(message);
  });
});

describe('consulInstances', () => {
  const entry = (id: string, statuses: string[]) => ({
    Node: { Node: 'bench', Address: '127.0.0.1' },
    Service: { ID: id, Service: 'api', Address: '10.0.0.1', Port: 8080, Tags: ['a'] },
    Checks: statuses.map((Status, i) => ({ CheckID: `c${i}`, Status })),
  });
  it.each([
    ['no instances', [], []],
    ['a node check passing', [entry('api-01', ['passing'])], ['passing']],
    ['the worst check wins', [entry('api-01', ['passing', 'warning', 'passing'])], ['warning']],
    ['critical beats warning', [entry('api-01', ['warning', 'critical'])], ['critical']],
    ['no checks at all', [entry('api-01', [])], ['passing']],
    [
      'an unknown status counts as worst',
      [entry('api-01', ['critical', 'maintenance'])],
      ['maintenance'],
    ],
  ])('%s', (_name, answer, statuses) => {
    const got = consulInstances(JSON.stringify(answer));
    expect(got.map((i) => i.status)).toEqual(statuses);
    for (const i of got) expect(i).toMatchObject({ id: 'api-01', address: '10.0.0.1', port: 8080 });
  });

  it.each([
    ['not JSON', 'rpc error', /not JSON/],
    ['an object (an error body)', '{"error":"ACL not found"}', /not a JSON array/],
    ['an entry without Service', '[{"Checks":[]}]', /without Service.ID/],
    [
      'a port as a string',
      '[{"Service":{"ID":"a","Address":"h","Port":"80"}}]',
      /without Service.ID/,
    ],
    [
      'Checks not an array',
      '[{"Service":{"ID":"a","Address":"h","Port":80},"Checks":{}}]',
      /Checks is not an array/,
    ],
  ])('throws on %s', (_name, text, message) => {
    expect(() => consulInstances(text)).toThrow(message);
  });
});

describe('requiredVersion (as the build scripts read go.mod)', () => {
  const goMod = [
    'module maxine.local/x',
    '',
    'go 1.20',
    '',
    'require github.com/hashicorp/consul v1.14.11',
    '',
    'require (',
    '\tgithub.com/hashicorp/consul/api v1.18.1 // indirect',
    '\tgo.etcd.io/etcd/server/v3 v3.6.4',
    ')',
    'replace launchpad.net/gocheck => github.com/go-check/check v0.0.0-20140225173054-eb6ee6f84d0a',
  ].join('\n');
  it.each([
    ['github.com/hashicorp/consul', 'v1.14.11'],
    ['github.com/hashicorp/consul/api', 'v1.18.1'],
    ['go.etcd.io/etcd/server/v3', 'v3.6.4'],
    ['launchpad.net/gocheck', undefined],
    ['github.com/hashicorp', undefined],
  ])('%s → %s', (module, version) => {
    expect(requiredVersion(goMod, module)).toBe(version);
  });

  it('finds the versions bench/peers.js runs in the repository go.mod files', () => {
    const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');
    expect(
      requiredVersion(read('bench/peers/consul/go.mod'), 'github.com/hashicorp/consul'),
    ).toMatch(/^v1\.(1[0-6]|[0-9])\./); // an MPL-2.0 release (decision 0028)
    expect(requiredVersion(read('e2e/controlplane/go.mod'), 'go.etcd.io/etcd/server/v3')).toMatch(
      /^v3\.6\./,
    );
  });

  it('the Consul builder module never names the not-to-use modules', () => {
    for (const file of ['bench/peers/consul/go.mod', 'bench/peers/consul/go.sum']) {
      const text = readFileSync(join(ROOT, file), 'utf8');
      expect(text).not.toMatch(/hashicorp\/consul\/(envoyextensions|troubleshoot)\s/);
    }
  });
});

describe('peerInstance', () => {
  it('gives 10 distinct instances with zones a/b and weights 1-3', () => {
    const all = Array.from({ length: 10 }, (_, i) => peerInstance('api', i));
    expect(new Set(all.map((i) => i.id)).size).toBe(10);
    expect(new Set(all.map((i) => i.host)).size).toBe(10);
    expect(all[0]).toEqual({
      id: 'api-01',
      host: '10.0.0.1',
      port: 8080,
      version: 'v1',
      zone: 'a',
      weight: 1,
    });
    expect(all.map((i) => i.zone).join('')).toBe('ababababab');
    expect(all.map((i) => i.weight)).toEqual([1, 2, 3, 1, 2, 3, 1, 2, 3, 1]);
  });
});

describe('versus (maxine ÷ peer)', () => {
  it.each([
    [{ ratioRps: 0.6, cpuUsPerRequest: 50 }, { ratioRps: 0.15, cpuUsPerRequest: 200 }, 4, 4],
    [{ ratioRps: 0.5, cpuUsPerRequest: 40 }, { ratioRps: 0.5, cpuUsPerRequest: 40 }, 1, 1],
    [{ ratioRps: undefined, cpuUsPerRequest: 40 }, { ratioRps: 0.5, cpuUsPerRequest: 80 }, NaN, 2],
    [{ ratioRps: 0.5, cpuUsPerRequest: 40 }, { ratioRps: 0, cpuUsPerRequest: 80 }, NaN, 2],
    [{ ratioRps: 0.5, cpuUsPerRequest: 0 }, { ratioRps: 0.25, cpuUsPerRequest: 80 }, 2, NaN],
    [undefined, { ratioRps: 0.25, cpuUsPerRequest: 80 }, NaN, NaN],
  ])('%j ÷ %j → throughput %d, cpu %d', (maxine, peer, throughput, cpu) => {
    const got = versus(maxine, peer);
    const close = (value: number, expected: number) =>
      Number.isNaN(expected) ? expect(value).toBeNaN() : expect(value).toBeCloseTo(expected);
    close(got.throughput, throughput);
    close(got.cpu, cpu);
  });
});
