import { existsSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, normalize } from 'node:path';
import { copiedFiles, readDockerfile } from '../../scripts/testbed/node/worker-image';

/**
 * The Dockerfile and the local build of the worker image (scripts/testbed/node/worker-image.ts,
 * which reads it) agree, and what they copy is enough: every module the image's entry points reach
 * is copied, and every package they import is a production dependency (the image runs
 * `npm ci --omit=dev`).
 */
const repo = join(__dirname, '..', '..');
const recipe = readDockerfile();
const copied = new Set(copiedFiles(recipe).keys());
const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };

/** The entry points: the image's CMD, the scripts its build runs, and the scripts the README runs from the image. */
const entryPoints = [recipe.cmd.at(-1)!, ...recipe.nodeSteps.map((step) => step.find((arg) => arg.endsWith('.ts'))!), 'scripts/alert-bridge.ts', 'scripts/schedules.ts'];

function resolveModule(from: string, spec: string): string {
  const base = normalize(join(dirname(from), spec));
  const found = [base, `${base}.ts`, `${base}.js`, join(base, 'index.ts')].find((file) => existsSync(join(repo, file)) && statSync(join(repo, file)).isFile());
  if (!found) throw new Error(`${from}: cannot resolve ${spec}`);
  return found;
}

/** Every file reachable from the entry points by relative imports (type-only imports included: harmless), and the packages they import. */
function reachable(): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const queue = [...entryPoints];
  while (queue.length) {
    const file = queue.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    const text = readFileSync(join(repo, file), 'utf8');
    for (const match of text.matchAll(/(?:from|import|require)\s*\(?\s*'([^']+)'/g)) {
      const spec = match[1]!;
      if (spec.startsWith('.')) queue.push(resolveModule(file, spec));
      else if (!spec.startsWith('node:') && !builtinModules.includes(spec)) packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
    }
  }
  return { files, packages };
}

describe('the worker image recipe', () => {
  test("the Dockerfile is one the local build understands: Node's major as scripts/node-runtime.js pins it, an entry point that exists", () => {
    const runtime = require('../../scripts/node-runtime.js') as { version: string };
    expect(recipe.nodeMajor).toBe(Number(runtime.version.split('.')[0]));
    expect(recipe.cmd).toEqual(['node', '--import', 'tsx', 'workers/main.ts']);
    expect(recipe.npmCi).toContain('--omit=dev');
    expect(recipe.aptPackages).toContain('postgresql-client-15');
    expect(existsSync(join(repo, recipe.cmd.at(-1)!))).toBe(true);
    // The workflows bundled while the image is built, and the worker told where (WORKFLOW_BUNDLE).
    expect(recipe.nodeSteps).toEqual([['--import', 'tsx', 'workers/bundle-workflows.ts', 'workflow-bundle.js']]);
    expect(recipe.env).toContain(`WORKFLOW_BUNDLE=${recipe.workdir}/workflow-bundle.js`);
  });

  test('every module the entry points reach is copied, and nothing of the test bed is', () => {
    const { files } = reachable();
    expect([...files].filter((file) => !copied.has(file))).toEqual([]);
    expect([...copied].filter((file) => file.startsWith('scripts/testbed/') || file.startsWith('test/'))).toEqual([]);
  });

  test('every package they import is a production dependency', () => {
    const { packages } = reachable();
    expect(packages.size).toBeGreaterThan(5);
    expect([...packages].filter((name) => !(name in pkg.dependencies))).toEqual([]);
  });

  test('an instruction the local build does not know is refused with a sentence, not skipped', () => {
    expect(() => readDockerfile('FROM node:24-bookworm-slim\nADD https://example.com/x /x\n')).toThrow('Dockerfile: ADD: the local build does not know this instruction');
    expect(() => readDockerfile('FROM node:24-alpine\n')).toThrow('the local build knows node:<major>-bookworm-slim only');
  });
});
