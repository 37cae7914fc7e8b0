/**
 * The layering rule bites (eslint.config.js, docs/decisions/0012-layering.md): ESLint's own
 * API runs the project's config on a deliberate forbidden import and on an allowed one. The
 * file paths are real files of the tree, so the type-checked rules find them in the project.
 */
import { describe, expect, it } from '@jest/globals';
import { ESLint } from 'eslint';

const eslint = new ESLint({ cwd: process.cwd() });

async function restricted(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return (result?.messages ?? [])
    .filter((m) => m.ruleId === 'no-restricted-imports' || m.fatal === true)
    .map((m) => m.message);
}

describe('the layering lint rule', () => {
  // importing file, import → the rule's message (or none)
  it.each<[string, string, RegExp | undefined]>([
    ['sidecar/agent.ts', '../operator/auth/authenticator.js', /must not import the operator/],
    ['sidecar/health/monitor.ts', '../../operator/kube/pods.js', /must not import the operator/],
    ['common/names.ts', '../operator/auth/authenticator.js', /must not import the operator/],
    ['common/names.ts', '../sidecar/mirror.js', /must not import the sidecar/],
    ['operator/operator.ts', '../sidecar/mirror.js', /must not import the sidecar/],
    ['operator/policy/store.ts', '../http/caller.js', /know no transport/],
    ['operator/registry/registry.ts', '../kube/pods.js', /know no transport/],
    ['operator/policy/store.ts', '../webhook/server.js', /know no transport/],
    ['plugin/inject-check.ts', '../operator/webhook/server.js', /may import common\/ only/],
    ['plugin/commands.ts', '../sidecar/mirror.js', /may import common\/ only/],
    ['plugin/inject-check.ts', '../common/injection-patch.js', undefined],
    ['operator/registry/registry.ts', '../../sidecar/mirror.js', /must not import the sidecar/],
    [
      'clients/typescript/src/client.ts',
      '../../../operator/registry/registry.js',
      /must not import the operator/,
    ],
    [
      'clients/typescript/src/client.ts',
      '../../../sidecar/mirror.js',
      /must not import the sidecar/,
    ],
    ['clients/typescript/src/client.ts', '../../../common/wire.js', undefined],
    ['sidecar/agent.ts', '../common/logger.js', undefined],
    ['operator/operator.ts', '../common/injection.js', undefined],
    ['operator/http/app.ts', '../policy/access.js', undefined],
    ['operator/policy/store.ts', '../auth/authenticator.js', undefined],
  ])('%s importing %s', async (filePath, source, expected) => {
    const code = `import type * as M from '${source}';\nexport type T = typeof M;\n`;
    const messages = await restricted(filePath, code);
    if (expected === undefined) expect(messages).toEqual([]);
    else expect(messages).toEqual([expect.stringMatching(expected)]);
  });
});
