// Runs before `npm start` and `npm test`: on a fresh clone (or after the lock file changed) install
// the exact locked packages, so the two README commands are all a new machine needs.
const { existsSync, statSync } = require('node:fs');
const { execSync } = require('node:child_process');
const { join } = require('node:path');

const root = join(__dirname, '..');
const installedMarker = join(root, 'node_modules', '.package-lock.json');
const lockFile = join(root, 'package-lock.json');
const stale = !existsSync(installedMarker) || statSync(installedMarker).mtimeMs < statSync(lockFile).mtimeMs;
if (stale) {
  console.error('[setup] installing npm packages (npm ci)');
  execSync('npm ci --no-audit --no-fund', { cwd: root, stdio: 'inherit' });
}
