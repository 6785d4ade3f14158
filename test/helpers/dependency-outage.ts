import Redis from 'ioredis';
import { Client as PgClient } from 'pg';
import type { SystemName } from '../../activities/errors';
import { stopApiserver } from './kube-outage';
import { stopServer, type ServerOutage } from './server-outage';
import { testbedEnv } from './testbed';

/** The systems a runbook changes, whose outage the crash matrix plays (activities/errors.ts names them so). */
export type DependencyName = Extract<SystemName, 'the Kubernetes API' | 'PostgreSQL' | 'Redis' | 'S3'>;

async function postgresAnswers(url: string): Promise<boolean> {
  const client = new PgClient({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function redisAnswers(url: string): Promise<boolean> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 2000 });
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } finally {
    redis.disconnect();
  }
}

/**
 * One of the test bed's systems made unreachable for real: its server stopped (connections refused)
 * until `restore`. PostgreSQL gets a fast shutdown (SIGINT): a smart one would wait for the
 * worker's pooled sessions to leave.
 */
export function stopDependency(system: DependencyName): Promise<ServerOutage> {
  const env = testbedEnv();
  switch (system) {
    case 'the Kubernetes API':
      return stopApiserver();
    case 'PostgreSQL':
      return stopServer('postgres', () => postgresAnswers(env.TESTBED_POSTGRES_ADMIN_URL!), 120_000, 'SIGINT');
    case 'Redis':
      return stopServer('redis', () => redisAnswers(env.TESTBED_REDIS_ADMIN_URL!));
    case 'S3':
      return stopServer('s3', async () => (await fetch(env.S3_ENDPOINT!, { signal: AbortSignal.timeout(2000) })).status > 0);
  }
}
