import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { bundleWorkflowCode, type WorkflowBundle } from '@temporalio/worker';

const root = resolve(__dirname, '..', '..');
/** What a workflow bundle can contain: workflow code imports only these (and types from elsewhere), plus node_modules. */
const sourceDirs = ['workflows', 'common', 'test/workflows', 'bench/workflows'];
const cacheDir = join(root, 'node_modules', '.cache', 'runbook-workflow-bundles');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) => (entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : /\.[cm]?[jt]s$/.test(entry.name) ? [join(dir, entry.name)] : []))
    .sort();
}

/** The bundle's cache key: its entry points and the content of every file it could include, and the lockfile. */
function keyOf(workflowsPath: string, interceptorModules: string[]): string {
  const hash = createHash('sha256').update(JSON.stringify([workflowsPath, interceptorModules]));
  for (const file of [...sourceDirs.flatMap((dir) => sourceFiles(join(root, dir))), join(root, 'package-lock.json')]) {
    hash.update(file).update(readFileSync(file));
  }
  return hash.digest('hex').slice(0, 32);
}

const inProcess = new Map<string, Promise<WorkflowBundle>>();

/**
 * The workflow bundle for a test worker, made once per content: webpack takes seconds per worker,
 * and the suite creates hundreds. Kept in memory per test file and in node_modules/.cache across
 * files (a fresh clone starts empty); any change to a file the bundle may include makes a new key.
 */
export function cachedWorkflowBundle(workflowsPath: string, interceptorModules: string[]): Promise<WorkflowBundle> {
  const key = keyOf(workflowsPath, interceptorModules);
  let bundle = inProcess.get(key);
  if (!bundle) {
    bundle = readOrBuild(key, workflowsPath, interceptorModules);
    inProcess.set(key, bundle);
    bundle.catch(() => inProcess.delete(key));
  }
  return bundle;
}

async function readOrBuild(key: string, workflowsPath: string, interceptorModules: string[]): Promise<WorkflowBundle> {
  const file = join(cacheDir, `${key}.js`);
  try {
    if (statSync(file).isFile()) return { code: readFileSync(file, 'utf8') };
  } catch {
    // not cached yet
  }
  const { code } = await bundleWorkflowCode({ workflowsPath, workflowInterceptorModules: interceptorModules, logger: quietLogger });
  mkdirSync(cacheDir, { recursive: true });
  const partial = `${file}.${process.pid}.partial`;
  writeFileSync(partial, code);
  renameSync(partial, file); // whole or not at all, also with test files in parallel
  return { code };
}

const quiet = () => undefined;
const quietLogger = { log: quiet, trace: quiet, debug: quiet, info: quiet, warn: quiet, error: quiet };
