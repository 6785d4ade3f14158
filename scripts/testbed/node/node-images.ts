import { createHash } from 'node:crypto';
import { copyFileSync, createReadStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runChecked } from '../processes';

/**
 * Container images without a registry: a root file system from Debian packages
 * (`mmdebstrap --variant=extract`, the machine's apt sources), wrapped as a one-layer docker archive
 * by the few lines below, imported into containerd (`ctr images import`); pods use
 * `imagePullPolicy: Never`. Cached by content hash under <cache>/images/.
 */
export interface ImageSpec {
  name: string;
  /** Debian bookworm packages (with their dependencies). */
  packages: string[];
  cmd: string[];
  env?: string[];
}

export const pauseImageName = 'pause';

export const imageSpecs: ImageSpec[] = [
  { name: 'redis', packages: ['redis-server'], cmd: ['redis-server', '--bind', '0.0.0.0', '--protected-mode', 'no', '--save', ''] },
  {
    name: 'postgres',
    packages: ['postgresql-15', 'postgresql-contrib-15'],
    cmd: ['/usr/lib/postgresql/15/bin/postgres', '-D', '/var/lib/postgresql/data'],
    env: ['PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
  },
];

const pauseSource = join(__dirname, 'pause.go.txt');
const defaultPath = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(file)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolve(hash.digest('hex')))
      .on('error', reject);
  });
}

/** Image reference with the content hash as tag: a changed package list or file of ours is a new image. */
export function imageRef(name: string, tag: string): string {
  return `localhost/testbed/${name}:${tag}`;
}

function contentTag(parts: string[]): string {
  return createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 16);
}

export function specTag(spec: ImageSpec): string {
  return contentTag(['debian-bookworm', spec.name, ...spec.packages, ...spec.cmd, ...(spec.env ?? []), readFileSync(__filename, 'utf8')]);
}

export function pauseTag(): string {
  return contentTag(['pause', readFileSync(pauseSource, 'utf8'), readFileSync(__filename, 'utf8')]);
}

/** Writes a docker-archive (docker save format) of one layer tar. */
async function writeDockerArchive(work: string, layerTar: string, ref: string, cmd: string[], env: string[], out: string): Promise<void> {
  const diffId = `sha256:${await sha256File(layerTar)}`;
  const config = {
    architecture: 'amd64',
    os: 'linux',
    config: { Cmd: cmd, Env: env, WorkingDir: '/' },
    rootfs: { type: 'layers', diff_ids: [diffId] },
    history: [{ created_by: 'runbook test bed (scripts/testbed/node/node-images.ts)' }],
  };
  const configJson = JSON.stringify(config);
  const configName = `${createHash('sha256').update(configJson).digest('hex')}.json`;
  writeFileSync(join(work, configName), configJson);
  writeFileSync(join(work, 'manifest.json'), JSON.stringify([{ Config: configName, RepoTags: [ref], Layers: ['layer.tar'] }]));
  if (layerTar !== join(work, 'layer.tar')) renameSync(layerTar, join(work, 'layer.tar'));
  runChecked('tar', ['-cf', `${out}.partial`, '-C', work, 'manifest.json', configName, 'layer.tar']);
  renameSync(`${out}.partial`, out);
}

/** Builds (or finds in the cache) the archive of an image; returns its path and reference. */
export async function buildImage(cacheDir: string, spec: ImageSpec, log: (line: string) => void): Promise<{ archive: string; ref: string }> {
  const tag = specTag(spec);
  const ref = imageRef(spec.name, tag);
  const dir = join(cacheDir, 'images');
  const archive = join(dir, `${spec.name}-${tag}.tar`);
  if (existsSync(archive)) return { archive, ref };
  const work = join(dir, `${spec.name}-${tag}.work`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const t0 = Date.now();
  log(`image ${spec.name}: mmdebstrap ${spec.packages.join(' ')}`);
  runChecked('nice', ['-n', '10', 'mmdebstrap', '--quiet', '--variant=extract', `--include=${spec.packages.join(',')}`, 'bookworm', join(work, 'root.tar')], { maxBuffer: 64 * 1024 * 1024 });
  await writeDockerArchive(work, join(work, 'root.tar'), ref, spec.cmd, spec.env ?? [defaultPath], archive);
  rmSync(work, { recursive: true, force: true });
  log(`image ${spec.name}: built in ${Date.now() - t0} ms`);
  return { archive, ref };
}

export async function buildPauseImage(cacheDir: string, log: (line: string) => void): Promise<{ archive: string; ref: string }> {
  const tag = pauseTag();
  const ref = imageRef(pauseImageName, tag);
  const dir = join(cacheDir, 'images');
  const archive = join(dir, `${pauseImageName}-${tag}.tar`);
  if (existsSync(archive)) return { archive, ref };
  const work = join(dir, `${pauseImageName}-${tag}.work`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, 'src'), { recursive: true });
  copyFileSync(pauseSource, join(work, 'src', 'main.go'));
  writeFileSync(join(work, 'src', 'go.mod'), 'module testbed.local/pause\n\ngo 1.22\n');
  log('image pause: go build');
  runChecked('go', ['build', '-trimpath', '-ldflags', '-s -w', '-o', join(work, 'rootfs', 'pause'), '.'], {
    cwd: join(work, 'src'),
    env: { ...process.env, CGO_ENABLED: '0', GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod', PATH: `${process.env.PATH}:/usr/local/go/bin` },
  });
  runChecked('tar', ['-cf', join(work, 'layer.tar'), '-C', join(work, 'rootfs'), 'pause']);
  await writeDockerArchive(work, join(work, 'layer.tar'), ref, ['/pause'], [defaultPath], archive);
  rmSync(work, { recursive: true, force: true });
  return { archive, ref };
}
