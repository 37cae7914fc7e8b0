import { describe, expect, it } from '@jest/globals';
import {
  FORWARDED_BY_HEADER,
  FORWARDED_TO_HEADER,
  forwardedRequestHeaders,
  relayedResponseHeaders,
  writeKind,
} from './forward.js';

describe('writeKind: which requests a follower sends to the leader', () => {
  it.each<[string, string, ReturnType<typeof writeKind>]>([
    ['POST', '/api/v1/instances', 'write'],
    ['POST', '/api/v1/instances/', 'write'],
    ['POST', '/api/v1/instances?x=1', 'write'],
    ['PUT', '/api/v1/instances/web-1/heartbeat', 'write'],
    ['PUT', '/api/v1/instances/web-1/heartbeat?x=1', 'write'],
    ['DELETE', '/api/v1/instances/web-1', 'write'],
    ['POST', '/api/v1/reports', 'report'],
    // Reads, and what is not a registry write, are served where they land.
    ['GET', '/api/v1/instances/web-1', undefined],
    ['HEAD', '/api/v1/discover/shop/web', undefined],
    ['GET', '/api/v1/events', undefined],
    ['PUT', '/api/v1/instances/web-1', undefined],
    ['DELETE', '/api/v1/instances', undefined],
    ['DELETE', '/api/v1/instances/web-1/heartbeat', undefined],
    ['POST', '/api/v1/services', undefined],
    ['POST', '/api/v1/instancesx', undefined],
    ['POST', '/inject', undefined],
  ])('%s %s → %s', (method, url, kind) => {
    expect(writeKind(method, url)).toBe(kind);
  });
});

describe('forwardedRequestHeaders', () => {
  it.each<[string, Record<string, string>, Record<string, string>]>([
    [
      'keeps the credentials and what parses the body; adds the hop and the address',
      {
        authorization: 'Bearer t',
        'content-type': 'application/json',
        'content-length': '12',
        'x-maxine-source': 'shop/web',
        traceparent: '00-abc-def-01',
        cookie: 'a=b',
        host: 'replica-b:7710',
        connection: 'keep-alive',
        [FORWARDED_BY_HEADER]: 'forged',
      },
      {
        authorization: 'Bearer t',
        'content-type': 'application/json',
        'content-length': '12',
        'x-maxine-source': 'shop/web',
        traceparent: '00-abc-def-01',
        'x-forwarded-for': '10.0.0.9',
        [FORWARDED_BY_HEADER]: 'replica-b',
      },
    ],
    [
      "keeps the kubectl user's token the service proxy forwarded (decision 0036)",
      { 'x-maxine-kubernetes-authorization': 'Bearer kube-user', authorization: 'Bearer sa' },
      {
        'x-maxine-kubernetes-authorization': 'Bearer kube-user',
        authorization: 'Bearer sa',
        'x-forwarded-for': '10.0.0.9',
        [FORWARDED_BY_HEADER]: 'replica-b',
      },
    ],
    [
      'appends to an x-forwarded-for chain',
      { 'x-forwarded-for': '192.0.2.1' },
      { 'x-forwarded-for': '192.0.2.1, 10.0.0.9', [FORWARDED_BY_HEADER]: 'replica-b' },
    ],
  ])('%s', (_what, given, sent) => {
    expect(
      forwardedRequestHeaders(given, { identity: 'replica-b', clientAddress: '10.0.0.9' }),
    ).toEqual(sent);
  });
});

describe('relayedResponseHeaders', () => {
  it('relays the answer but its connection-level headers, naming the leader', () => {
    expect(
      relayedResponseHeaders(
        {
          'content-type': 'application/json',
          'content-length': '20',
          'retry-after': '3',
          'www-authenticate': 'Bearer realm="maxine"',
          connection: 'keep-alive',
          'keep-alive': 'timeout=65',
          'transfer-encoding': 'chunked',
        },
        'replica-a',
      ),
    ).toEqual({
      'content-type': 'application/json',
      'content-length': '20',
      'retry-after': '3',
      'www-authenticate': 'Bearer realm="maxine"',
      [FORWARDED_TO_HEADER]: 'replica-a',
    });
  });
});
