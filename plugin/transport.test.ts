import { describe, expect, it } from '@jest/globals';
import type { RequestOptions } from 'node:http';
import { KUBE_USER_HEADER, withForwardedToken } from './transport.js';

/** A kubeconfig stand-in that puts `authorization` (if any) on the request, as client-node does. */
const kubeconfig = (authorization?: string) => ({
  applyToHTTPSOptions(options: RequestOptions): Promise<void> {
    if (authorization !== undefined)
      options.headers = { ...options.headers, Authorization: authorization };
    return Promise.resolve();
  },
});

describe('withForwardedToken: the kubectl user reaches the operator through the proxy', () => {
  it.each<[string, string | undefined, string | undefined, string | undefined]>([
    // [case, kubeconfig Authorization, --token, forwarded header]
    ['a token user', 'Bearer user-token', undefined, 'Bearer user-token'],
    ['--token wins over the kubeconfig', 'Bearer user-token', 'flag-token', 'Bearer flag-token'],
    ['a client-certificate user: nothing to forward', undefined, undefined, undefined],
    ['a client-certificate user with --token', undefined, 'flag-token', 'Bearer flag-token'],
    ['basic auth is not forwarded', 'Basic dTpw', undefined, undefined],
  ])('%s', async (_case, authorization, token, expected) => {
    const options: RequestOptions = { headers: { accept: 'application/json' } };
    const forwarded = await withForwardedToken(kubeconfig(authorization), options, token);
    expect(forwarded).toBe(expected !== undefined);
    const headers = options.headers as Record<string, string>;
    expect(headers[KUBE_USER_HEADER]).toBe(expected);
    // The API server still gets the kubeconfig's own credentials.
    expect(headers.Authorization).toBe(authorization);
    expect(headers.accept).toBe('application/json');
  });
});
