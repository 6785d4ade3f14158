/**
 * Two projects: `unit` (pure tests under test/unit/, no servers: `npm run test:unit`) and
 * `testbed` (everything else, against the real test bed that test/global-setup.ts brings up, its
 * real node's own tests test/node/*.node-test.ts last: test/sequencer.js).
 */
const shared = {
  testEnvironment: 'node',
  transform: {
    // Type errors are caught by `tsc --noEmit` in `npm test`; here only transpile, for speed.
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.json', diagnostics: false }],
  },
  setupFiles: ['<rootDir>/test/helpers/quiet-runtime.ts'],
  testTimeout: 180_000,
};

/** Suites that induce faults in real containers of the test bed's node. */
const realContainerSuites = [
  '<rootDir>/test/node/',
  '<rootDir>/test/runbooks/pod-crash-loop.test.ts',
  '<rootDir>/test/runbooks/post-incident-review.test.ts',
  '<rootDir>/test/activities/incident-evidence.test.ts',
  '<rootDir>/test/activities/log-evidence.test.ts',
  '<rootDir>/test/runbooks/daily-health-check.test.ts',
  '<rootDir>/test/alerting/alert-bridge.test.ts',
  '<rootDir>/test/alerting/alerts-end-to-end.test.ts',
];

module.exports = {
  testTimeout: 180_000,
  testSequencer: '<rootDir>/test/sequencer.js',
  projects: [
    { ...shared, displayName: 'unit', roots: ['<rootDir>/test/unit'], testMatch: ['**/*.test.ts'] },
    {
      ...shared,
      displayName: 'testbed',
      roots: ['<rootDir>/test'],
      testMatch: ['**/*.test.ts', '**/*.node-test.ts'],
      // TESTBED_REAL_NODE=0 (a machine without root): a test bed of kwok pods only, so neither the node's
      // tests nor the suites whose faults need real containers.
      testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/unit/', ...(process.env.TESTBED_REAL_NODE === '0' ? realContainerSuites : [])],
      globalSetup: '<rootDir>/test/global-setup.ts',
      globalTeardown: '<rootDir>/test/global-teardown.ts',
    },
  ],
};
