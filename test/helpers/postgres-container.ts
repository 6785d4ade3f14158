import type { KubeConfig } from '@kubernetes/client-node';
import { Client as PgClient } from 'pg';
import { kubectl } from '../../scripts/testbed/node/node-kubectl';
import { waitUntil } from '../../scripts/testbed/processes';
import { kubernetesNamespace, layout } from './kube-cluster';
import { rolloutRestart } from './kube-objects';
import { withAdmin } from './postgres-scratch';
import { testbedEnv } from './testbed';

/** A shell command in short-drama-prod's real postgres container, as its user: what the runbooks' exec runs as. Its stdout. */
export function inPostgres(command: string): string {
  return kubectl(layout, ['exec', '-n', kubernetesNamespace, 'deploy/postgres', '-c', 'postgres', '--', 'sh', '-c', command]);
}

/** The files under `dir` (relative to the container's root), sorted. */
export function filesInPostgres(dir: string): string[] {
  return inPostgres(`cd / && find ${dir} -type f | sort`).split('\n').filter(Boolean);
}

/**
 * Files of 100 lines each under `/` in the postgres container (their folders made), with the given
 * ages: what diskPressure finds on the database's volume. Paths are relative to the container's root.
 */
export function writeAgedFiles(files: Array<{ path: string; age?: string }>, blobs: Array<{ path: string; bytes: number }> = []): void {
  const folders = [...new Set([...files, ...blobs].map(({ path }) => `/${path.slice(0, path.lastIndexOf('/'))}`))];
  inPostgres(
    [
      `mkdir -p ${folders.join(' ')}`,
      ...blobs.map(({ path, bytes }) => `head -c ${bytes} /dev/zero > /${path}`),
      ...files.map(({ path }) => `yes line | head -n 100 > /${path}`),
      ...files.flatMap(({ path, age }) => (age ? [`touch -d '${age}' /${path}`] : [])),
    ].join(' && '),
  );
}

/**
 * A real restart of short-drama-prod's PostgreSQL (`kubectl rollout restart`), done once its Service
 * answers again at `databaseUrl`: the pod is Ready some moments before kube-proxy sends the NodePort's
 * connections to it.
 */
export async function restartPostgres(kc: KubeConfig, databaseUrl: string): Promise<void> {
  await rolloutRestart(kc, kubernetesNamespace, 'postgres');
  await waitUntil('PostgreSQL answering through its Service after the restart', () => postgresAnswers(databaseUrl));
}

/** A session at `url` opens and answers `SELECT 1`. */
export async function postgresAnswers(url: string): Promise<boolean> {
  const client = new PgClient({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * max_connections back at the seeded 100: `ALTER SYSTEM RESET`, and where a run restarted the
 * server with its own value in force, another real restart (the running value is read, not
 * `pending_restart`, which can lag right after a reload).
 */
export async function seededMaxConnections(kc: KubeConfig): Promise<void> {
  const running = await withAdmin(async (admin) => {
    await admin.query('ALTER SYSTEM RESET max_connections');
    await admin.query('SELECT pg_reload_conf()');
    return (await admin.query<{ max_connections: string }>('SHOW max_connections')).rows[0]!.max_connections;
  });
  if (running !== '100') await restartPostgres(kc, testbedEnv().TESTBED_POSTGRES_ADMIN_URL!);
}
