/**
 * Two projects: `unit` (pure tests under test/unit/, no servers: `npm run test:unit`) and
 * `testbed` (everything else, against the real test bed that test/global-setup.ts brings up).
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

module.exports = {
  testTimeout: 180_000,
  projects: [
    { ...shared, displayName: 'unit', roots: ['<rootDir>/test/unit'], testMatch: ['**/*.test.ts'] },
    {
      ...shared,
      displayName: 'testbed',
      roots: ['<rootDir>/test'],
      testMatch: ['**/*.test.ts'],
      testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/unit/'],
      globalSetup: '<rootDir>/test/global-setup.ts',
      globalTeardown: '<rootDir>/test/global-teardown.ts',
    },
  ],
};
