import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The layering (docs/decisions/0012-layering.md): the sidecar and the operator are two
 * programs that share only common/; common/ imports neither; plugin/ (kubectl-maxine) imports
 * common/ only; the registry and policy cores know no transport (HTTP, Kubernetes, the webhook). Tests are held to the same rules.
 */
const layer = (...groups) => ({
  'no-restricted-imports': [
    'error',
    {
      patterns: groups.map(([what, message]) => ({ group: [what].flat(), message })),
    },
  ],
});
const OPERATOR = [
  [
    '**/operator/**',
    'the sidecar and common/ must not import the operator; move the shared piece to common/',
  ],
];
const SIDECAR = [
  [
    '**/sidecar/**',
    'the operator and common/ must not import the sidecar; move the shared piece to common/',
  ],
];
const PLUGIN = [
  ['**/operator/**', '**/sidecar/**'],
  'plugin/ (kubectl-maxine) may import common/ only; move the shared piece to common/',
];
const TRANSPORT = [
  ['**/http/**', '**/kube/**', '**/webhook/**'],
  'operator/registry and operator/policy know no transport: take plain data (see policy/access.ts Caller)',
];

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'clients/typescript/dist/**',
      'node_modules/**',
      'coverage/**',
      'e2e/controlplane/**/*.go',
      'e2e/controlplane/kwok/**',
      '.scratch/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      complexity: ['error', 15],
      'max-params': ['error', 4],
      'max-depth': ['error', 4],
      eqeqeq: ['error', 'always'],
    },
  },
  {
    files: ['**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      globals: { process: 'readonly', console: 'readonly' },
    },
  },
  {
    // Tests read JSON answers as `any` on purpose and assert their shape.
    files: ['**/*.test.ts', 'test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      'max-params': 'off',
    },
  },
  {
    files: ['sidecar/**/*.ts'],
    rules: layer(...OPERATOR),
  },
  {
    files: ['operator/**/*.ts'],
    ignores: ['operator/registry/**', 'operator/policy/**'],
    rules: layer(...SIDECAR),
  },
  {
    files: ['operator/registry/**/*.ts', 'operator/policy/**/*.ts'],
    rules: layer(...SIDECAR, TRANSPORT),
  },
  {
    files: ['common/**/*.ts'],
    rules: layer(...OPERATOR, ...SIDECAR),
  },
  {
    // The published client package ships common/ only (decision 0034).
    files: ['clients/**/*.ts'],
    rules: layer(...OPERATOR, ...SIDECAR),
  },
  {
    files: ['plugin/**/*.ts'],
    rules: layer(PLUGIN),
  },
);
