// Three tiers: `unit` (pure modules, *.test.ts), `integration` (real sockets and processes,
// *.int.test.ts) and `e2e` (a real Kubernetes control plane, e2e/**/*.e2e.test.ts). `npm test`
// runs all three; `npm run test:unit` is the fast loop.
const transform = {
  '^.+\\.ts$': [
    '@swc/jest',
    {
      jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
      module: { type: 'es6' },
    },
  ],
};
const common = {
  transform,
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  testEnvironment: 'node',
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
};

export default {
  // Integration tests start real servers and the hostile-input run is long; unit tests are fast anyway.
  testTimeout: 120_000,
  reporters: ['default', '<rootDir>/test/totals-reporter.js'],
  projects: [
    {
      ...common,
      displayName: 'unit',
      testMatch: ['<rootDir>/**/*.test.ts'],
      testPathIgnorePatterns: [
        ...common.testPathIgnorePatterns,
        '\\.int\\.test\\.ts$',
        '\\.e2e\\.test\\.ts$',
      ],
    },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['<rootDir>/**/*.int.test.ts'],
    },
    {
      ...common,
      displayName: 'e2e',
      testMatch: ['<rootDir>/e2e/**/*.e2e.test.ts'],
    },
  ],
};
