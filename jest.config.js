/** Tests run against the real test bed that test/global-setup.ts brings up (see scripts/testbed). */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    // Type errors are caught by `tsc --noEmit` in `npm test`; here only transpile, for speed.
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.json', diagnostics: false }],
  },
  globalSetup: '<rootDir>/test/global-setup.ts',
  globalTeardown: '<rootDir>/test/global-teardown.ts',
  setupFiles: ['<rootDir>/test/helpers/quiet-runtime.ts'],
  testTimeout: 180_000,
};
