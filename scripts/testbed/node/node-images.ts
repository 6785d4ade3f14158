import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, createReadStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { runChecked } from '../processes';
import { appReleases } from '../kubernetes-seed';
import { postgresUid } from './node-prod';

/**
 * Container images without a registry: a root file system from Debian packages
 * (`mmdebstrap --variant=extract`, the machine's apt sources) plus a few files of ours, or one
 * static Go program of ours; wrapped as a one-layer docker archive by the few lines below, imported
 * into containerd (`ctr images import`); pods use `imagePullPolicy: Never`. The tag is a hash of
 * everything that makes the image (package list, files, command, this build script), so a changed
 * recipe is a new image; archives are cached under <cache>/images/.
 */
export interface ImageSpec {
  name: string;
  /** Debian bookworm packages (with their dependencies). */
  packages: string[];
  /** Files added on top of the packages: their path in the image, mode, and content. */
  files?: { path: string; mode: number; content: string }[];
  cmd: string[];
  env?: string[];
  /** More tags of the same image (e.g. two releases of the app, so a rollback changes the image): ref `<name>:<alias>-<hash>`. */
  aliases?: readonly string[];
}

/** An image holding one static Go program of ours, /<name>, built from <source> beside this file. */
export interface GoImageSpec {
  name: string;
  source: string;
}

const here = __dirname;
export const defaultPath = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The pod sandbox image (containerd's pinned "pause"). */
export const pauseImage: GoImageSpec = { name: 'pause', source: 'pause.go.txt' };

export const goImageSpecs: GoImageSpec[] = [pauseImage, { name: 'apiserver-probe', source: 'apiserver-probe.go.txt' }];

export { postgresUid };

export const imageSpecs: ImageSpec[] = [
  { name: 'redis', packages: ['redis-server'], cmd: ['redis-server', '--bind', '0.0.0.0', '--protected-mode', 'no', '--save', ''] },
  {
    name: 'postgres',
    // coreutils and findutils: diskPressure's df, du and find run in this container, as in the official image.
    packages: ['postgresql-15', 'postgresql-contrib-15', 'dash', 'coreutils', 'findutils'],
    files: [
      { path: 'etc/passwd', mode: 0o644, content: `root:x:0:0:root:/root:/bin/sh\npostgres:x:${postgresUid}:${postgresUid}:PostgreSQL:/var/lib/postgresql:/bin/sh\n` },
      { path: 'etc/group', mode: 0o644, content: `root:x:0:\npostgres:x:${postgresUid}:\n` },
      { path: 'usr/local/bin/postgres-start', mode: 0o755, content: readFileSync(join(here, 'postgres-start.sh'), 'utf8') },
    ],
    cmd: ['/usr/local/bin/postgres-start'],
    env: ['PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'PGHOST=/tmp'],
  },
  {
    name: 'short-drama-app',
    // dash and coreutils: a shell to `kubectl exec` into, as the usual python base images have.
    packages: ['python3', 'python3-psycopg2', 'python3-redis', 'dash', 'coreutils'],
    files: [{ path: 'app/short-drama-app.py', mode: 0o644, content: readFileSync(join(here, 'short-drama-app.py'), 'utf8') }],
    cmd: ['python3', '-u', '/app/short-drama-app.py'],
    aliases: appReleases,
  },
];

export interface BuiltImage {
  archive: string;
  ref: string;
  /** Alias -> its ref (the same image under another tag). */
  aliases?: Record<string, string>;
}

function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(file)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolve(hash.digest('hex')))
      .on('error', reject);
  });
}

export function imageRef(name: string, tag: string): string {
  return `localhost/testbed/${name}:${tag}`;
}

export function contentTag(parts: string[]): string {
  return createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 16);
}

/** The recipe of every image: this file. A change to it rebuilds them all. */
function recipe(): string {
  return readFileSync(__filename, 'utf8');
}

export function specTag(spec: ImageSpec): string {
  const files = (spec.files ?? []).flatMap((file) => [file.path, file.mode.toString(8), file.content]);
  return contentTag(['debian-bookworm', spec.name, ...spec.packages, '--files', ...files, '--cmd', ...spec.cmd, '--env', ...(spec.env ?? []), '--aliases', ...(spec.aliases ?? []), recipe()]);
}

export function goImageTag(spec: GoImageSpec): string {
  return contentTag(['go', spec.name, readFileSync(join(here, spec.source), 'utf8'), recipe()]);
}

/** The image's run configuration (OCI image config): what `CMD`, `ENV`, `WORKDIR`, `USER` and `EXPOSE` set in a Dockerfile. */
export interface ImageRunConfig {
  cmd: string[];
  env: string[];
  workingDir?: string;
  user?: string;
  exposedPorts?: number[];
}

/** Writes a docker-archive (docker save format) of one layer tar, tagged with every ref. */
export async function writeDockerArchive(work: string, layerTar: string, refs: string[], run: ImageRunConfig, out: string): Promise<void> {
  const diffId = `sha256:${await sha256File(layerTar)}`;
  const config = {
    architecture: 'amd64',
    os: 'linux',
    config: {
      Cmd: run.cmd,
      Env: run.env,
      WorkingDir: run.workingDir ?? '/',
      ...(run.user ? { User: run.user } : {}),
      ...(run.exposedPorts ? { ExposedPorts: Object.fromEntries(run.exposedPorts.map((port) => [`${port}/tcp`, {}])) } : {}),
    },
    rootfs: { type: 'layers', diff_ids: [diffId] },
    history: [{ created_by: 'runbook test bed (scripts/testbed/node/node-images.ts)' }],
  };
  const configJson = JSON.stringify(config);
  const configName = `${createHash('sha256').update(configJson).digest('hex')}.json`;
  writeFileSync(join(work, configName), configJson);
  writeFileSync(join(work, 'manifest.json'), JSON.stringify([{ Config: configName, RepoTags: refs, Layers: ['layer.tar'] }]));
  if (layerTar !== join(work, 'layer.tar')) renameSync(layerTar, join(work, 'layer.tar'));
  runChecked('tar', ['-cf', `${out}.partial`, '-C', work, 'manifest.json', configName, 'layer.tar']);
  renameSync(`${out}.partial`, out);
}

/** Appends the spec's files (and a world-writable /tmp) to the root file system's tar, owned by root. */
function appendFiles(work: string, rootTar: string, spec: ImageSpec): void {
  const extra = join(work, 'extra');
  mkdirSync(join(extra, 'tmp'), { recursive: true });
  chmodSync(join(extra, 'tmp'), 0o1777);
  for (const file of spec.files ?? []) {
    mkdirSync(dirname(join(extra, file.path)), { recursive: true });
    writeFileSync(join(extra, file.path), file.content);
    chmodSync(join(extra, file.path), file.mode);
  }
  // Parent folders too (as Debian has them, 0755): the package tar may not list them all.
  const parents = new Set<string>();
  for (const file of spec.files ?? []) for (let dir = dirname(file.path); dir !== '.'; dir = dirname(dir)) parents.add(dir);
  const entries = ['./tmp', ...[...parents].sort().map((dir) => `./${dir}`), ...(spec.files ?? []).map((file) => `./${file.path}`)];
  runChecked('tar', ['-rf', rootTar, '--owner=0', '--group=0', '--numeric-owner', '--no-recursion', '-C', extra, ...entries]);
}

/**
 * The one cache of image archives: <cache>/images/<name>-<tag>.tar, built by `build` (in a work
 * folder of its own, given the refs to tag the archive with) only when missing.
 */
export async function cachedImage(
  cacheDir: string,
  name: string,
  tag: string,
  aliases: readonly string[],
  log: (line: string) => void,
  build: (work: string, refs: string[], archive: string) => Promise<void>,
): Promise<BuiltImage> {
  const ref = imageRef(name, tag);
  const aliasRefs = Object.fromEntries(aliases.map((alias) => [alias, imageRef(name, `${alias}-${tag}`)]));
  const dir = join(cacheDir, 'images');
  const archive = join(dir, `${name}-${tag}.tar`);
  if (!existsSync(archive)) {
    const work = join(dir, `${name}-${tag}.work`);
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    const t0 = Date.now();
    await build(work, [ref, ...Object.values(aliasRefs)], archive);
    rmSync(work, { recursive: true, force: true });
    log(`image ${name}: built in ${Date.now() - t0} ms`);
  }
  return { archive, ref, aliases: aliasRefs };
}

/** Builds (or finds in the cache) the archive of a Debian-packages image. */
export function buildImage(cacheDir: string, spec: ImageSpec, log: (line: string) => void): Promise<BuiltImage> {
  return cachedImage(cacheDir, spec.name, specTag(spec), spec.aliases ?? [], log, async (work, refs, archive) => {
    log(`image ${spec.name}: mmdebstrap ${spec.packages.join(' ')}`);
    const rootTar = join(work, 'root.tar');
    runChecked('nice', ['-n', '10', 'mmdebstrap', '--quiet', '--variant=extract', `--include=${spec.packages.join(',')}`, 'bookworm', rootTar], { maxBuffer: 64 * 1024 * 1024 });
    appendFiles(work, rootTar, spec);
    await writeDockerArchive(work, rootTar, refs, { cmd: spec.cmd, env: spec.env ?? [defaultPath] }, archive);
  });
}

/** Builds (or finds in the cache) the archive of a one-program Go image. */
export function buildGoImage(cacheDir: string, spec: GoImageSpec, log: (line: string) => void): Promise<BuiltImage> {
  return cachedImage(cacheDir, spec.name, goImageTag(spec), [], log, async (work, refs, archive) => {
    mkdirSync(join(work, 'src'), { recursive: true });
    copyFileSync(join(here, spec.source), join(work, 'src', 'main.go'));
    writeFileSync(join(work, 'src', 'go.mod'), `module testbed.local/${spec.name}\n\ngo 1.22\n`);
    log(`image ${spec.name}: go build`);
    runChecked('go', ['build', '-trimpath', '-ldflags', '-s -w', '-o', join(work, 'rootfs', spec.name), '.'], {
      cwd: join(work, 'src'),
      env: { ...process.env, CGO_ENABLED: '0', GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod', PATH: `${process.env.PATH}:/usr/local/go/bin` },
    });
    runChecked('tar', ['-cf', join(work, 'layer.tar'), '-C', join(work, 'rootfs'), spec.name]);
    await writeDockerArchive(work, join(work, 'layer.tar'), refs, { cmd: [`/${spec.name}`], env: [defaultPath] }, archive);
  });
}

/** Every image of the node, by name (built in parallel; mmdebstrap and go build are mostly I/O-bound here). */
export async function buildNodeImages(cacheDir: string, log: (line: string) => void): Promise<Record<string, BuiltImage>> {
  const built = await Promise.all([
    ...goImageSpecs.map(async (spec) => [spec.name, await buildGoImage(cacheDir, spec, log)] as const),
    ...imageSpecs.map(async (spec) => [spec.name, await buildImage(cacheDir, spec, log)] as const),
  ]);
  return Object.fromEntries(built);
}
