// ESLint as the Temporal samples ship it (typescript-eslint, no floating promises), plus the
// workflow sandbox's import rules and the layers of README "Layout": each imports only downward.
const js = require('@eslint/js');
const tseslint = require('typescript-eslint');
const prettier = require('eslint-config-prettier');

/** What each top-level folder may import of ours. */
const layers = {
  common: [],
  config: ['common'],
  activities: ['common', 'config'],
  workflows: ['common', 'config', 'activities'],
  workers: ['common', 'config', 'activities', 'workflows'],
  client: ['common', 'config', 'activities', 'workflows'],
  scripts: ['common', 'config', 'activities', 'workflows', 'workers', 'client'],
  // Benchmarks run against the sandbox, so they may use the test bed.
  bench: ['common', 'config', 'activities', 'workflows', 'workers', 'client', 'scripts'],
};
const folders = [...Object.keys(layers), 'test'];
const ours = (names) => `^(\\.\\./)+(${names.join('|')})(/|$)`;

/** Node built-ins and SDK parts that do not exist (or break determinism) in the workflow sandbox. */
const notInTheSandbox = [
  { regex: '^node:', message: 'workflow code runs in the deterministic sandbox: no Node built-ins (do I/O in an activity)' },
  { regex: '^(fs|path|os|crypto|child_process|http|https|net|dns|url|util|stream|zlib)$', message: 'workflow code runs in the deterministic sandbox: no Node built-ins' },
  { regex: '^@temporalio/(client|worker|activity|testing)$', message: 'workflow code may use @temporalio/workflow and @temporalio/common only' },
];

function zone(layer) {
  const forbidden = folders.filter((f) => f !== layer && !layers[layer].includes(f));
  const patterns = [
    { regex: ours(forbidden), message: `${layer}/ imports only downward (${layers[layer].join(', ') || 'nothing of ours'})` },
    { regex: '^@temporalio/[^/]+/lib/', message: "no SDK internals: use the packages' public exports" },
  ];
  // Workflows see activities and configuration only as types: their code runs in the workers.
  if (layer === 'workflows') patterns.push({ regex: ours(['activities', 'config']), allowTypeImports: true, message: 'workflows import activities and configuration as types only' });
  if (layer === 'workflows' || layer === 'common') patterns.push(...notInTheSandbox);
  return { files: [`${layer}/**/*.ts`], rules: { '@typescript-eslint/no-restricted-imports': ['error', { patterns }] } };
}

module.exports = tseslint.config(
  { ignores: ['node_modules/**', '.testbed/**', '.testbed-real-node/**', 'test/histories/**', 'tmp-*', '**/*.d.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: __dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/no-require-imports': 'off',
      'object-shorthand': ['error', 'always'],
    },
  },
  ...Object.keys(layers).map(zone),
  {
    // A runbook reads like its section of the manual: the workflow function and each named part
    // short, the file small enough to read top to bottom (README "Layout").
    files: ['workflows/*.ts'],
    rules: {
      'max-lines-per-function': ['error', { max: 80, skipBlankLines: true, skipComments: true }],
      'max-lines': ['error', { max: 250, skipBlankLines: true, skipComments: true }],
    },
  },
  {
    files: ['**/*.js'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: {
      globals: {
        require: 'readonly',
        module: 'writable',
        __dirname: 'readonly',
        process: 'readonly',
        console: 'readonly',
        URL: 'readonly',
        Buffer: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        fetch: 'readonly',
        AbortSignal: 'readonly',
      },
    },
  },
  prettier,
);
