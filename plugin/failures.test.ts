import { describe, expect, it } from '@jest/globals';
import { EXIT, PluginError } from './exit-codes.js';
import { describeFailure } from './failures.js';
import type { Via } from './failures.js';

const proxy: Via = {
  via: 'proxy',
  target: { namespace: 'maxine-system', service: 'maxine-operator', port: '7710' },
  path: '/api/v1/services',
};
const direct: Via = { via: 'direct', server: 'http://127.0.0.1:7710', path: '/api/v1/services' };
const status = (code: number, reason: string, message: string) =>
  JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message });
const operatorError = (code: string, message: string) =>
  JSON.stringify({ error: { code, message } });

function failure(status: number, body: string, via: Via): PluginError | undefined {
  try {
    describeFailure({ status, contentType: 'application/json', body }, via);
    return undefined;
  } catch (err) {
    return err as PluginError;
  }
}

describe('describeFailure', () => {
  it.each([
    [
      'the Service does not exist',
      404,
      status(404, 'NotFound', 'services "maxine-operator" not found'),
      proxy,
      EXIT.operatorMissing,
      /no Maxine operator: services "maxine-operator" not found\. Is Maxine installed\?/,
    ],
    [
      'no endpoints',
      503,
      status(503, 'ServiceUnavailable', 'no endpoints available for service "maxine-operator"'),
      proxy,
      EXIT.operatorMissing,
      /does not answer \(503\): no endpoints available.*kubectl -n maxine-system get pods,endpoints maxine-operator/s,
    ],
    [
      'the proxy cannot connect',
      502,
      'error trying to reach service: dial tcp 10.0.0.1:7710: connect: connection refused',
      proxy,
      EXIT.operatorMissing,
      /does not answer \(502\): error trying to reach service/,
    ],
    [
      'RBAC refuses services/proxy',
      403,
      status(
        403,
        'Forbidden',
        'services "maxine-operator:7710" is forbidden: User "bob" cannot get resource "services/proxy"',
      ),
      proxy,
      EXIT.forbidden,
      /refused \(403\): .*cannot get resource "services\/proxy".*kubectl auth can-i get services\/proxy -n maxine-system/s,
    ],
    [
      'the API server does not know the user',
      401,
      status(401, 'Unauthorized', 'Unauthorized'),
      proxy,
      EXIT.forbidden,
      /does not know you \(401\)/,
    ],
    [
      'the operator wants credentials, through the proxy',
      401,
      operatorError('UNAUTHENTICATED', 'A token is required'),
      proxy,
      EXIT.forbidden,
      /operator answered 401 UNAUTHENTICATED: A token is required\nThe API server does not pass your credentials/,
    ],
    [
      'the operator refuses the forwarded kubeconfig token, through the proxy',
      401,
      operatorError('UNAUTHENTICATED', 'The forwarded Kubernetes token was not accepted'),
      { ...proxy, forwarded: true },
      EXIT.forbidden,
      /^the operator answered 401 UNAUTHENTICATED: The forwarded Kubernetes token was not accepted$/,
    ],
    [
      'no token to forward (a client certificate), through the proxy',
      401,
      operatorError('UNAUTHENTICATED', 'A token is required'),
      { ...proxy, forwarded: false },
      EXIT.forbidden,
      /no bearer token for kubectl maxine to forward \(a client certificate\?\).*--token TOKEN/s,
    ],
    [
      'the operator wants credentials, direct',
      401,
      operatorError('UNAUTHENTICATED', 'A token is required'),
      direct,
      EXIT.forbidden,
      /^the operator answered 401 UNAUTHENTICATED: A token is required$/,
    ],
    [
      'an ACL refuses',
      403,
      operatorError('FORBIDDEN', 'no ACL allows read on shop/web'),
      proxy,
      EXIT.forbidden,
      /403 FORBIDDEN: no ACL allows read/,
    ],
    [
      'an unknown service',
      404,
      operatorError('SERVICE_NOT_FOUND', 'Service shop/nope is not registered'),
      proxy,
      EXIT.notFound,
      /404 SERVICE_NOT_FOUND/,
    ],
    [
      'no healthy instance',
      404,
      operatorError('NO_HEALTHY_INSTANCE', 'The service has no healthy instance'),
      direct,
      EXIT.notFound,
      /404 NO_HEALTHY_INSTANCE/,
    ],
    [
      'a route this operator lacks',
      404,
      operatorError('ROUTE_NOT_FOUND', 'No route'),
      direct,
      EXIT.operatorMissing,
      /ROUTE_NOT_FOUND/,
    ],
    [
      'something that is not Maxine at --server',
      404,
      '<html>nginx</html>',
      direct,
      EXIT.operatorMissing,
      /answered 404 to \/api\/v1\/services: is it a Maxine operator\?/,
    ],
    [
      'an operator failure',
      503,
      operatorError('NO_LEADER', 'No leader'),
      direct,
      EXIT.failed,
      /503 NO_LEADER/,
    ],
  ])('%s', (_what, code, body, via, exit, message) => {
    const err = failure(code, body, via);
    expect(err).toBeInstanceOf(PluginError);
    expect(err?.exitCode).toBe(exit);
    expect(err?.message).toMatch(message);
  });

  it('lets a 2xx through', () => {
    expect(failure(200, '{}', proxy)).toBeUndefined();
  });
});
