import { describe, expect, it } from '@jest/globals';
import type { UserSource } from '../../common/policy/acl.js';
import { codeOf } from '../../test/helpers/errors.js';
import { userPrincipal } from './authenticator.js';

const ISSUER = 'https://login.example.test';
const jwt: UserSource = { kind: 'jwt', issuer: ISSUER };
const token: UserSource = { kind: 'token' };

describe('userPrincipal', () => {
  it.each<[string, UserSource, string | undefined]>([
    // [user name, source, refusal code or undefined when accepted]
    ['alice', token, undefined],
    ['alice', jwt, undefined],
    ['system:serviceaccount:shop:web', jwt, 'UNAUTHENTICATED'],
    ['maxine:sidecar', token, 'UNAUTHENTICATED'],
    ['jwt:oncall', jwt, 'UNAUTHENTICATED'],
    ['token:ops-admin', jwt, 'UNAUTHENTICATED'],
    // would read `jwt:<issuer>:ops-admin`, the qualified name of the issuer's user ops-admin
    [`${ISSUER}:ops-admin`, jwt, 'UNAUTHENTICATED'],
    ['https://other.example:ops-admin', jwt, undefined],
    [`${ISSUER}:x`, token, undefined],
  ])('%s from %j → %s', (name, source, code) => {
    expect(codeOf(() => userPrincipal({ kind: 'User', name, groups: [] }, source))).toBe(code);
  });

  it('names users by source: one principal id per user, whatever the groups', () => {
    const a = userPrincipal({ kind: 'User', name: 'ops', groups: ['a'] }, jwt);
    const b = userPrincipal({ kind: 'User', name: 'ops', groups: ['b'] }, jwt);
    const t = userPrincipal({ kind: 'User', name: 'ops', groups: ['a'] }, token);
    expect(a.id).toBe(`jwt:${ISSUER}:ops`);
    expect(b.id).toBe(a.id);
    expect(a.key).not.toBe(b.key);
    expect(t.id).toBe('token:ops');
  });
});
