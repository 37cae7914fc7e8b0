import { describe, expect, it } from '@jest/globals';
import { ApiException } from '@kubernetes/client-node';
import {
  classifyKubeError,
  describeKubeError,
  isKubeConflict,
  isKubeNotFound,
  isKubePermanent,
  kubeErrorFields,
  MAX_MESSAGE_CHARS,
} from './errors.js';
import type { KubeErrorClass, KubeErrorFields } from './errors.js';

const headers = { 'audit-id': 'c0ffee', 'content-type': 'application/json', date: 'today' };
const statusBody = (code: number, reason: string, message: string): string =>
  JSON.stringify({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    details: { name: 'maxine-operator', group: 'coordination.k8s.io', kind: 'leases' },
    code,
  });
const watchError = (code: number, text: string): Error =>
  Object.assign(new Error(text), { statusCode: code });
const fetchError = (): Error =>
  Object.assign(
    new Error('request to https://127.0.0.1:6443/api/v1/pods failed, reason: connect ECONNREFUSED'),
    { type: 'system', code: 'ECONNREFUSED', errno: 'ECONNREFUSED' },
  );

describe('kubeErrorFields', () => {
  it.each<[string, unknown, KubeErrorFields]>([
    [
      'an ApiException with a Status body (the lease namespace is missing)',
      new ApiException(
        404,
        'Unknown API Status Code!',
        statusBody(404, 'NotFound', 'namespaces "maxine-system" not found'),
        headers,
      ),
      { status: 404, reason: 'NotFound', message: 'namespaces "maxine-system" not found' },
    ],
    [
      'a Forbidden answer',
      new ApiException(
        403,
        'Unknown API Status Code!',
        statusBody(403, 'Forbidden', 'leases.coordination.k8s.io is forbidden: User "x" cannot'),
        headers,
      ),
      {
        status: 403,
        reason: 'Forbidden',
        message: 'leases.coordination.k8s.io is forbidden: User "x" cannot',
      },
    ],
    [
      'a 401 without a body (client-node throws "Unauthorized" with the headers)',
      new ApiException(401, 'Unauthorized', undefined, headers),
      { status: 401, reason: 'Unauthorized', message: 'Unauthorized' },
    ],
    [
      'a body that is not JSON',
      new ApiException(502, 'Unknown API Status Code!', 'upstream connect error', headers),
      { status: 502, message: 'upstream connect error' },
    ],
    [
      'a parsed Status object as body',
      { code: 409, body: { reason: 'Conflict', message: 'the object has been modified' } },
      { status: 409, reason: 'Conflict', message: 'the object has been modified' },
    ],
    [
      'a watch that failed (client-node sets statusCode)',
      watchError(410, 'Gone'),
      { status: 410, reason: 'Expired', message: 'Gone' },
    ],
    [
      'a network error (no answer at all)',
      fetchError(),
      {
        reason: 'ECONNREFUSED',
        message:
          'request to https://127.0.0.1:6443/api/v1/pods failed, reason: connect ECONNREFUSED',
      },
    ],
    [
      'a network error in the cause',
      Object.assign(new TypeError('fetch failed'), { cause: { code: 'ENOTFOUND' } }),
      { reason: 'ENOTFOUND', message: 'fetch failed' },
    ],
    ['a plain Error', new Error('boom\n    at somewhere'), { message: 'boom' }],
    ['a string', 'went wrong', { message: 'went wrong' }],
    ['undefined', undefined, { message: 'undefined' }],
  ])('%s', (_what, err, expected) => {
    expect(kubeErrorFields(err)).toEqual(expected);
  });

  it('never carries the headers or the body of an ApiException', () => {
    const err = new ApiException(
      404,
      'Unknown API Status Code!',
      statusBody(404, 'NotFound', 'namespaces "maxine-system" not found'),
      headers,
    );
    // The exception's own message is the dump this function exists to avoid.
    expect(err.message).toContain('c0ffee');
    expect(JSON.stringify(kubeErrorFields(err))).not.toMatch(/c0ffee|Headers|HTTP-Code|details/);
  });

  it('clips a long message to one bounded line', () => {
    const fields = kubeErrorFields(new Error(`${'x'.repeat(5000)}\nsecond line`));
    expect(fields.message).toHaveLength(MAX_MESSAGE_CHARS);
    expect(fields.message).not.toContain('second line');
  });
});

describe('describeKubeError', () => {
  it.each<[unknown, string]>([
    [
      new ApiException(
        404,
        'Unknown API Status Code!',
        statusBody(404, 'NotFound', 'namespaces "maxine-system" not found'),
        headers,
      ),
      '404 NotFound: namespaces "maxine-system" not found',
    ],
    [
      fetchError(),
      'ECONNREFUSED: request to https://127.0.0.1:6443/api/v1/pods failed, reason: connect ECONNREFUSED',
    ],
    [new Error('boom'), 'boom'],
  ])('%#', (err, expected) => {
    expect(describeKubeError(err)).toBe(expected);
  });
});

const apiError = (code: number, reason: string): ApiException<string> =>
  new ApiException(code, 'Unknown API Status Code!', statusBody(code, reason, 'said no'), headers);

describe('classifyKubeError', () => {
  it.each<[string, unknown, KubeErrorClass]>([
    ['404 NotFound (ApiException)', apiError(404, 'NotFound'), 'not-found'],
    ['404 from a watch (statusCode)', watchError(404, 'Not Found'), 'not-found'],
    ['409 Conflict (ApiException)', apiError(409, 'Conflict'), 'conflict'],
    [
      '409 as a parsed Status body',
      { code: 409, body: { reason: 'Conflict', message: 'the object has been modified' } },
      'conflict',
    ],
    ['400 BadRequest', apiError(400, 'BadRequest'), 'permanent'],
    [
      '401 Unauthorized without a body',
      new ApiException(401, 'Unauthorized', undefined, headers),
      'permanent',
    ],
    ['403 Forbidden', apiError(403, 'Forbidden'), 'permanent'],
    ['405 MethodNotAllowed', apiError(405, 'MethodNotAllowed'), 'permanent'],
    ['413 RequestEntityTooLarge', apiError(413, 'RequestEntityTooLarge'), 'permanent'],
    ['415 from a watch (statusCode)', watchError(415, 'Unsupported Media Type'), 'permanent'],
    ['422 Invalid', apiError(422, 'Invalid'), 'permanent'],
    ['408 Timeout', apiError(408, 'Timeout'), 'transient'],
    ['410 Gone from a watch (relist)', watchError(410, 'Gone'), 'transient'],
    ['429 TooManyRequests', apiError(429, 'TooManyRequests'), 'transient'],
    ['500 InternalError', apiError(500, 'InternalError'), 'transient'],
    [
      '502 with a text body',
      new ApiException(502, 'Bad Gateway', 'upstream connect error', headers),
      'transient',
    ],
    ['503 ServiceUnavailable', apiError(503, 'ServiceUnavailable'), 'transient'],
    ['504 from a watch (statusCode)', watchError(504, 'Gateway Timeout'), 'transient'],
    ['ECONNREFUSED (node-fetch FetchError)', fetchError(), 'transient'],
    [
      'ETIMEDOUT',
      Object.assign(new Error('connect ETIMEDOUT 10.0.0.1:443'), { code: 'ETIMEDOUT' }),
      'transient',
    ],
    [
      'ECONNRESET in the cause (fetch)',
      Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNRESET' } }),
      'transient',
    ],
    [
      'AbortError (node-fetch)',
      Object.assign(new Error('The user aborted a request.'), {
        name: 'AbortError',
        type: 'aborted',
      }),
      'transient',
    ],
    [
      'AbortError (DOMException, numeric code 20)',
      new DOMException('aborted', 'AbortError'),
      'transient',
    ],
    [
      'TimeoutError (AbortSignal.timeout)',
      new DOMException('timed out', 'TimeoutError'),
      'transient',
    ],
    ['a plain Error (a bug: retried as before)', new Error('boom'), 'transient'],
    ['a thrown string', 'went wrong', 'transient'],
  ])('%s', (_what, err, expected) => {
    expect(classifyKubeError(err)).toBe(expected);
    expect(isKubeNotFound(err)).toBe(expected === 'not-found');
    expect(isKubeConflict(err)).toBe(expected === 'conflict');
    expect(isKubePermanent(err)).toBe(expected === 'permanent');
  });
});
