// Three tiers: `unit` (pure modules, *.test.ts), `integration` (real sockets and processes,
// *.int.test.ts) and `e2e` (a real Kubernetes control plane, e2e/**/*.e2e.test.ts). `npm test`
// runs all three; `npm run test:unit` is the fast loop.
import { availableParallelism } from 'node:os';

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
  // At least two workers: jest's default (cores - 1) is one on a 2-core machine, which runs every
  // suite in band, one after another, while most integration and e2e suites spend their time
  // waiting on sockets, child processes and a control plane. MAXINE_JEST_WORKERS overrides.
  maxWorkers: Number(process.env.MAXINE_JEST_WORKERS) || Math.max(2, availableParallelism() - 1),
  // A worker that has grown past this between suites is replaced by a fresh one: the module
  // registries of a hundred suites otherwise pile up, and loading a large library late in a long
  // run (@kubernetes/client-node) then spends its time in garbage collection.
  workerIdleMemoryLimit: '1GB',
  // Longest suites first, also on a fresh clone with no recorded durations (test/sequencer.js).
  testSequencer: '<rootDir>/test/sequencer.js',
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
