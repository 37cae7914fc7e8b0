import { describe, expect, it } from '@jest/globals';
import type { IncomingMessage } from 'node:http';
import type { V1TokenReviewStatus } from '@kubernetes/client-node';
import { AclEvaluator } from '../../common/policy/acl.js';
import { MaxineError } from '../../common/errors.js';
import { Authenticator } from './authenticator.js';
import { KUBE_USER_HEADER, KubeUserReviewer, kubeUserPrincipal } from './kube-user.js';
import { ReviewSlots } from './review-slots.js';

/** The catalog code a sync or async call fails with, or undefined. */
async function codeOf(fn: () => unknown): Promise<string | undefined> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof MaxineError) return e.code;
    throw e;
  }
  return undefined;
}

const ok = (username: string, groups: string[] = [], extra?: Record<string, string[]>) =>
  ({ authenticated: true, user: { username, groups, ...(extra && { extra }) } }) as const;

describe('kubeUserPrincipal: what a TokenReview of a forwarded token stands for', () => {
  it.each<[string, V1TokenReviewStatus | undefined, string, string[] | string]>([
    // [case, review status, principal id (or refusal start), groups]
    [
      'a Kubernetes user',
      ok('alice', ['dev', 'system:authenticated']),
      'kubernetes:alice',
      ['dev', 'system:authenticated'],
    ],
    [
      'a maxine: group is dropped',
      ok('alice', ['maxine:sidecars', 'dev']),
      'kubernetes:alice',
      ['dev'],
    ],
    [
      'a system: user name stays qualified',
      ok('system:admin', ['system:masters']),
      'kubernetes:system:admin',
      ['system:masters'],
    ],
    ['a ServiceAccount', ok('system:serviceaccount:shop:ci'), 'system:serviceaccount:shop:ci', []],
    [
      'a pod-bound ServiceAccount token is not a sidecar here',
      ok('system:serviceaccount:shop:web', [], {
        'authentication.kubernetes.io/pod-name': ['web-0'],
        'authentication.kubernetes.io/pod-uid': ['u1'],
      }),
      'system:serviceaccount:shop:web',
      [],
    ],
    [
      'not authenticated',
      { authenticated: false, error: 'token expired' },
      'The forwarded Kubernetes token was not accepted: token expired',
      'refused',
    ],
    [
      'no status',
      undefined,
      'The forwarded Kubernetes token was not accepted: not authenticated',
      'refused',
    ],
    ['no user name', { authenticated: true, user: {} }, 'The TokenReview named no user', 'refused'],
    [
      'a malformed ServiceAccount name',
      ok('system:serviceaccount:shop'),
      '"system:serviceaccount:shop" is not a ServiceAccount name',
      'refused',
    ],
  ])('%s', (_case, status, expected, groups) => {
    const p = kubeUserPrincipal(status);
    if (groups === 'refused') {
      expect(p).toBe(expected);
      return;
    }
    if (typeof p === 'string') throw new Error(p);
    expect(p.id).toBe(expected);
    expect(p.pod).toBeUndefined();
    const identity = p.identity;
    expect(identity.kind === 'Anonymous' ? [] : identity.groups).toEqual(groups);
  });

  it('ACL subjects: User kubernetes:<name>, the groups the API server named, never a bare name', () => {
    const acl = new AclEvaluator([
      {
        namespace: 'maxine-system',
        name: 'readers',
        spec: {
          subjects: [
            { kind: 'User', name: 'kubernetes:alice' },
            { kind: 'Group', name: 'auditors' },
          ],
          rules: [{ effect: 'allow', services: ['shop/*'], verbs: ['read'] }],
        },
      },
      {
        namespace: 'maxine-system',
        name: 'bare',
        spec: {
          subjects: [{ kind: 'User', name: 'bob' }],
          rules: [{ effect: 'allow', services: ['*/*'], verbs: ['read'] }],
        },
      },
    ]);
    const principal = (username: string, groups: string[] = []) => {
      const p = kubeUserPrincipal(ok(username, groups));
      if (typeof p === 'string') throw new Error(p);
      return p.identity;
    };
    const shop = { namespace: 'shop', name: 'web' };
    expect(acl.decide(principal('alice'), 'read', shop, 'deny').allowed).toBe(true);
    expect(acl.decide(principal('carol', ['auditors']), 'read', shop, 'deny').allowed).toBe(true);
    expect(acl.decide(principal('bob'), 'read', shop, 'deny').allowed).toBe(false);
  });
});

describe('KubeUserReviewer', () => {
  it('keeps a refusal a few seconds and shares one review between concurrent callers', async () => {
    const now = { t: 1_000 };
    let asked = 0;
    const reviewer = new KubeUserReviewer({
      ask: (token) => {
        asked += 1;
        return Promise.resolve(token === 'good' ? ok('alice') : { authenticated: false });
      },
      now: () => now.t,
      negativeCacheMs: 5_000,
    });
    const [a, b] = await Promise.all([reviewer.review('good', 'g'), reviewer.review('good', 'g')]);
    expect(a.principal.id).toBe('kubernetes:alice');
    expect(b).toBe(a);
    expect(asked).toBe(1);
    await expect(reviewer.review('bad', 'b')).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    await expect(reviewer.review('bad', 'b')).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(asked).toBe(2);
    now.t += 5_001;
    await expect(reviewer.review('bad', 'b')).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(asked).toBe(3);
  });

  it('a failed TokenReview is 503 NOT_READY, not the caller’s fault', async () => {
    const reviewer = new KubeUserReviewer({ ask: () => Promise.reject(new Error('ECONNREFUSED')) });
    await expect(reviewer.review('t', 'd')).rejects.toMatchObject({ code: 'NOT_READY' });
  });

  it('a flood of distinct tokens: no more reviews in flight than the shared bound, the rest 503, slots freed after', async () => {
    const answers: ((s: V1TokenReviewStatus) => void)[] = [];
    let asked = 0;
    const slots = new ReviewSlots(2);
    const reviewer = new KubeUserReviewer({
      ask: () => {
        asked += 1;
        return new Promise((resolve) => answers.push(resolve));
      },
      slots,
    });
    const first = reviewer.review('t1', 'd1');
    const second = reviewer.review('t2', 'd2');
    const again = reviewer.review('t1', 'd1'); // in flight already: shares it, takes no slot
    await expect(reviewer.review('t3', 'd3')).rejects.toMatchObject({
      code: 'NOT_READY',
      message: expect.stringContaining('Too many token reviews in flight (2)'),
    });
    expect(asked).toBe(2);
    expect(slots.inFlight).toBe(2);
    expect(slots.refused).toBe(1);
    for (const answer of answers.splice(0)) answer(ok('alice'));
    await Promise.all([first, second, again]);
    expect(slots.inFlight).toBe(0);
    const third = reviewer.review('t3', 'd3');
    answers.splice(0).forEach((answer) => answer(ok('bob')));
    expect((await third).principal.id).toBe('kubernetes:bob');
  });
});

describe('Authenticator: the forwarded header (issue 18)', () => {
  const req = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;
  function authenticator(withUsers: boolean) {
    let reviews = 0;
    const auth = new Authenticator({
      anonymous: true,
      hint: 'test',
      ...(withUsers && {
        kubeUsers: new KubeUserReviewer({
          ask: (token) => {
            reviews += 1;
            return Promise.resolve(
              token === 'kube-token' ? ok('alice', ['dev']) : { authenticated: false },
            );
          },
        }),
      }),
      staticTokens: {
        identify: (t) => {
          if (t === 'static-token-0123456789') return { kind: 'User', name: 'ops', groups: [] };
          throw new Error('unknown');
        },
      },
    });
    return { auth, reviews: () => reviews };
  }

  it('without Authorization, the forwarded token decides who calls (cached)', async () => {
    const { auth, reviews } = authenticator(true);
    const first = await auth.principal(req({ [KUBE_USER_HEADER]: 'Bearer kube-token' }));
    expect(first.who).toBe('User kubernetes:alice');
    const again = auth.principal(req({ [KUBE_USER_HEADER]: 'Bearer kube-token' }));
    expect(again).toBe(first); // synchronous: from the cache
    expect(reviews()).toBe(1);
  });

  it('Authorization wins over the forwarded header, as before', async () => {
    const { auth, reviews } = authenticator(true);
    const p = await auth.principal(
      req({
        authorization: 'Bearer static-token-0123456789',
        [KUBE_USER_HEADER]: 'Bearer kube-token',
      }),
    );
    expect(p.id).toBe('token:ops');
    expect(reviews()).toBe(0);
  });

  it('the same token under Authorization is not taken from the forwarded cache', async () => {
    const { auth } = authenticator(true);
    await auth.principal(req({ [KUBE_USER_HEADER]: 'Bearer kube-token' }));
    expect(await codeOf(() => auth.principal(req({ authorization: 'Bearer kube-token' })))).toBe(
      'UNAUTHENTICATED',
    );
  });

  it.each([
    ['a refused token', true, 'Bearer other-token'],
    ['a header that is not Bearer', true, 'Basic abc'],
    ['an operator without Kubernetes (standalone)', false, 'Bearer kube-token'],
  ])('%s is 401, even with anonymous access on', async (_case, withUsers, header) => {
    const { auth } = authenticator(withUsers);
    expect(await codeOf(() => auth.principal(req({ [KUBE_USER_HEADER]: header })))).toBe(
      'UNAUTHENTICATED',
    );
  });
});
