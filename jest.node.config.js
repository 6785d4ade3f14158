/**
 * The real node's tests (`npm run test:node`): they expect the test bed's cluster and its real node
 * up (`TESTBED_REAL_NODE=1 npm run testbed -- up`; short-drama-prod.node-test.ts needs the whole
 * sandbox). teardown.node-test.ts, always last (test/node/sequencer.js), tears the node down and
 * checks that nothing of it is left on the host.
 */
module.exports = {
  testEnvironment: 'node',
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.json', diagnostics: false }],
  },
  setupFiles: ['<rootDir>/test/helpers/quiet-runtime.ts'],
  roots: ['<rootDir>/test/node'],
  testMatch: ['**/*.node-test.ts'],
  testTimeout: 600_000,
  testSequencer: '<rootDir>/test/node/sequencer.js',
};
