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

const { readdirSync, readFileSync } = require('node:fs');
const { join } = require('node:path');

/**
 * The suites that need real containers of the test bed's node: test/node, and every suite that uses
 * the helpers making them or driving the real app (test/helpers/kube-activity-scratch.ts, kube-pods.ts,
 * app-pods.ts).
 */
function realContainerSuites() {
  const needsNode = /\b(scratchApp|scratchPod|scratchSingleWriter|failingPod|printInContainer|restartInContainer|appPods|lockProjects)\(/;
  const files = readdirSync(join(__dirname, 'test'), { recursive: true }).filter((f) => /\.test\.ts$/.test(f) && !f.startsWith('helpers'));
  return ['<rootDir>/test/node/', ...files.filter((f) => needsNode.test(readFileSync(join(__dirname, 'test', f), 'utf8'))).map((f) => `<rootDir>/test/${f}`)];
}

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
      testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/unit/', ...(process.env.TESTBED_REAL_NODE === '0' ? realContainerSuites() : [])],
      globalSetup: '<rootDir>/test/global-setup.ts',
      globalTeardown: '<rootDir>/test/global-teardown.ts',
    },
  ],
};
