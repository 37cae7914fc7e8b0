/** tokenFromFile on a real file: read once per refresh period, so a rotated token is picked up. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { tokenFromFile } from '../src/index.js';

describe('tokenFromFile', () => {
  it('serves the cached token within refreshMs, the rotated one after, and refuses an empty file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'maxine-token-'));
    try {
      const file = join(dir, 'token');
      await writeFile(file, 'first-token\n');
      let now = 0;
      const token = tokenFromFile(file, { refreshMs: 1000, now: () => now });
      expect(await token()).toBe('first-token');
      await writeFile(file, 'rotated-token');
      now = 999;
      expect(await token()).toBe('first-token');
      now = 1000;
      expect(await token()).toBe('rotated-token');
      await writeFile(file, '  \n');
      now = 5000;
      await expect(token()).rejects.toThrow(`the token file ${file} is empty`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
