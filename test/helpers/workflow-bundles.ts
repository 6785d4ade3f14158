import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
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

/** The content of every file a bundle could include, and the lockfile: read once per test file (the sources do not change during it). */
let sourcesDigest: Buffer | undefined;

/** The bundle's cache key: its entry points and the sources' digest. */
function keyOf(workflowsPath: string, interceptorModules: string[]): string {
  if (!sourcesDigest) {
    const sources = createHash('sha256');
    for (const file of [...sourceDirs.flatMap((dir) => sourceFiles(join(root, dir))), join(root, 'package-lock.json')]) sources.update(file).update(readFileSync(file));
    sourcesDigest = sources.digest();
  }
  return createHash('sha256')
    .update(JSON.stringify([workflowsPath, interceptorModules]))
    .update(sourcesDigest)
    .digest('hex')
    .slice(0, 32);
}

const inProcess = new Map<string, Promise<string>>();

/**
 * The file of the workflow bundle for a test worker, made once per content: webpack takes seconds
 * per worker, and the suite creates hundreds. Kept in node_modules/.cache across test files (a
 * fresh clone starts empty); any change to a file the bundle may include makes a new key. A worker
 * process takes it as WORKFLOW_BUNDLE.
 */
export function cachedWorkflowBundleFile(workflowsPath: string, interceptorModules: string[]): Promise<string> {
  const key = keyOf(workflowsPath, interceptorModules);
  let file = inProcess.get(key);
  if (!file) {
    file = readOrBuild(key, workflowsPath, interceptorModules);
    inProcess.set(key, file);
    file.catch(() => inProcess.delete(key));
  }
  return file;
}

/** The bundle itself, for an in-process Worker's `workflowBundle`. */
export async function cachedWorkflowBundle(workflowsPath: string, interceptorModules: string[]): Promise<WorkflowBundle> {
  return { code: readFileSync(await cachedWorkflowBundleFile(workflowsPath, interceptorModules), 'utf8') };
}

async function readOrBuild(key: string, workflowsPath: string, interceptorModules: string[]): Promise<string> {
  const file = join(cacheDir, `${key}.js`);
  if (existsSync(file)) return file;
  const { code } = await bundleWorkflowCode({ workflowsPath, workflowInterceptorModules: interceptorModules, logger: quietLogger });
  mkdirSync(cacheDir, { recursive: true });
  const partial = `${file}.${process.pid}.partial`;
  writeFileSync(partial, code);
  renameSync(partial, file); // whole or not at all, also with test files in parallel
  return file;
}

const quiet = () => undefined;
const quietLogger = { log: quiet, trace: quiet, debug: quiet, info: quiet, warn: quiet, error: quiet };
