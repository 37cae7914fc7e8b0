import { describe, expect, it } from '@jest/globals';
import { secretDigest } from '../../common/config-sources.js';
import type { ConfigSecrets } from '../../common/config-sources.js';
import { SecretNotReady, withSecretValues } from './secrets.js';
import type { SecretObject } from './secrets.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const db: SecretObject = { uid: 'uid-db', data: { password: b64('pw-1'), user: b64('app') } };
const announced: ConfigSecrets = {
  'db.password': { secret: 'db', key: 'password', digest: secretDigest('uid-db', 'pw-1') },
};

describe('withSecretValues', () => {
  const cases: { name: string; secret: SecretObject | undefined; result: RegExp | object }[] = [
    { name: 'the announced value', secret: db, result: { mode: 'a', 'db.password': 'pw-1' } },
    {
      name: 'a newer value than announced',
      secret: { ...db, data: { password: b64('pw-2') } },
      result: /differs from the announced version/,
    },
    {
      name: 'the same value in a re-created Secret (another uid)',
      secret: { ...db, uid: 'uid-new' },
      result: /differs/,
    },
    { name: 'a missing key', secret: { ...db, data: {} }, result: /has no key password/ },
    { name: 'a missing Secret', secret: undefined, result: /Secret db not found/ },
  ];
  it.each(cases)('$name', async (c) => {
    const run = withSecretValues({ mode: 'a' }, announced, () => Promise.resolve(c.secret));
    if (c.result instanceof RegExp) {
      await expect(run).rejects.toThrow(SecretNotReady);
      await expect(run).rejects.toThrow(c.result);
    } else await expect(run).resolves.toEqual(c.result);
  });
});
