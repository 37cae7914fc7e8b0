/**
 * A sidecar whose credentials the operator refuses says so — the status, the error code and
 * what to check about its token, for registration and for the event stream — instead of
 * claiming the operator cannot be reached; an
 * operator that is really away is still reported as unreachable.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSidecarConfig } from '../../sidecar/config.js';
import { createSidecar } from '../../sidecar/sidecar.js';
import type { Sidecar } from '../../sidecar/sidecar.js';
import { createLogger } from '../../common/logger.js';
import { eventually, logSink, startOperator } from '../helpers/operator.js';
import type { LogLine, TestOperator } from '../helpers/operator.js';
import { writeTokens } from '../helpers/auth.js';

let op: TestOperator;
let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'maxine-sidecar-auth-'));
  const staticTokensFile = await writeTokens(work, { ops: 'good-token-0123456789' });
  await writeFile(join(work, 'stale-token'), 'stale-token-0123456789\n');
  op = await startOperator({ config: { anonymous: false, staticTokensFile } });
});
afterAll(async () => {
  await op.stop();
  await rm(work, { recursive: true, force: true });
});

function startSidecar(
  operatorUrl: string,
  env: NodeJS.ProcessEnv,
): { sidecar: Sidecar; logs: LogLine[] } {
  const { sink, logs } = logSink();
  const config = loadSidecarConfig({
    MAXINE_SERVICE: 'web',
    MAXINE_POD_NAMESPACE: 'shop',
    MAXINE_OPERATOR_URL: operatorUrl,
    MAXINE_LISTEN_PORT: '0',
    ...env,
  });
  return { sidecar: createSidecar(config, createLogger('warn', sink, 'sidecar')), logs };
}

describe('a sidecar refused by the operator', () => {
  it.each([
    ['with a token the operator does not know', { MAXINE_TOKEN_FILE: 'stale-token' }],
    ['without a token', {}],
  ])('logs an authentication refusal %s', async (_name, env) => {
    const file = (env as { MAXINE_TOKEN_FILE?: string }).MAXINE_TOKEN_FILE;
    const { sidecar, logs } = startSidecar(op.url, {
      ...(file !== undefined && { MAXINE_TOKEN_FILE: join(work, file) }),
    });
    await sidecar.start();
    try {
      const line = await eventually(
        () => Promise.resolve(logs.find((l) => /refused our credentials/.test(l.msg))),
        5_000,
        'the refusal log line',
      );
      expect(line).toMatchObject({
        level: 'warn',
        status: 401,
        code: 'UNAUTHENTICATED',
        hint: expect.stringContaining('MAXINE_TOKEN_FILE'),
      });
      // The event stream's handshake is refused the same way, and says so.
      const stream = await eventually(
        () => Promise.resolve(logs.find((l) => /refused the event stream/.test(l.msg))),
        5_000,
        'the event-stream refusal log line',
      );
      expect(stream).toMatchObject({ level: 'warn', status: 401, hint: expect.any(String) });
      expect(logs.some((l) => /cannot reach/.test(l.msg))).toBe(false);
    } finally {
      await sidecar.stop();
    }
  });

  it('still says "cannot reach the operator" when nothing answers', async () => {
    const { sidecar, logs } = startSidecar('http://127.0.0.1:1', {});
    await sidecar.start();
    try {
      const line = await eventually(
        () => Promise.resolve(logs.find((l) => /cannot reach the operator/.test(l.msg))),
        5_000,
        'the unreachable log line',
      );
      expect(line.status).toBeUndefined();
    } finally {
      await sidecar.stop();
    }
  });
});
