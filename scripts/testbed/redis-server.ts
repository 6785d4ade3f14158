import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Redis from 'ioredis';
import { ensureDebianPackages } from './install';
import { port } from './layout';
import { startDetached, waitUntil } from './processes';
import type { TestbedContext, TestbedServer } from './context';
import { prodAddress } from './node/node-prod';

/** The default user (every command, every key): for setting up and checking, never for the worker. */
function hostRedisUrl(ctx: TestbedContext): string {
  return `redis://:${encodeURIComponent(ctx.secrets.redisPassword)}@127.0.0.1:${port(ctx.layout, 'redis')}/0`;
}

function prodRedisAddress(ctx: TestbedContext): string {
  return prodAddress(ctx.layout, 'redis', `127.0.0.1:${port(ctx.layout, 'redis')}`);
}

/** short-drama-prod's Redis as its default user: the host process, or the pod through its NodePort (TESTBED_REAL_NODE=1). */
export function redisAdminUrl(ctx: TestbedContext): string {
  return `redis://:${encodeURIComponent(ctx.secrets.redisPassword)}@${prodRedisAddress(ctx)}/0`;
}

/** The worker's ACL user (deploy/redis/runbook-worker.acl). */
export const redisWorkerUser = 'runbook-worker';

export function redisUrl(ctx: TestbedContext): string {
  return `redis://${redisWorkerUser}:${encodeURIComponent(ctx.secrets.redisWorkerPassword)}@${prodRedisAddress(ctx)}/0`;
}

/** The rules of deploy/redis/runbook-worker.acl, as the tokens ACL SETUSER takes. */
export function redisWorkerRules(): string[] {
  const text = readFileSync(join(__dirname, '../../deploy/redis/runbook-worker.acl'), 'utf8');
  return text
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('#'))
    .flatMap((line) => line.split(/\s+/))
    .filter(Boolean);
}

/**
 * Redis' settings (a directive and its arguments), the same for the host process and the pod: the
 * default user's password, the worker's ACL user, no persistence, maxmemory 256 MiB.
 */
export function redisSettings(ctx: TestbedContext): Array<[string, ...string[]]> {
  return [
    ['requirepass', ctx.secrets.redisPassword],
    ['user', redisWorkerUser, 'reset', 'on', `>${ctx.secrets.redisWorkerPassword}`, ...redisWorkerRules()],
    ['save', ''],
    ['appendonly', 'no'],
    ['maxmemory', '256mb'],
  ];
}

/** The settings as redis.conf lines (each argument quoted as redis.conf reads it). */
export function redisConfLines(ctx: TestbedContext): string[] {
  return redisSettings(ctx).map(([name, ...values]) => [name, ...values.map((value) => JSON.stringify(value))].join(' '));
}

export const redisServer: TestbedServer = {
  name: 'redis',
  ports: ['redis'],
  install(ctx) {
    ensureDebianPackages(['redis-server'], ctx.log);
  },
  async isHealthy(ctx) {
    const redis = new Redis(hostRedisUrl(ctx), { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null });
    redis.on('error', () => undefined); // a refused connection is the answer here, not an error to print
    try {
      await redis.connect();
      return (await redis.ping()) === 'PONG';
    } finally {
      redis.disconnect();
    }
  },
  async start(ctx) {
    const dir = join(ctx.layout.stateDir, 'redis');
    mkdirSync(dir, { recursive: true });
    startDetached(ctx.layout.stateDir, 'redis', 'redis-server', [
      '--port',
      String(port(ctx.layout, 'redis')),
      '--bind',
      '127.0.0.1',
      ...redisSettings(ctx).flatMap(([name, ...values]) => [`--${name}`, ...values]),
      '--dir',
      dir,
      '--daemonize',
      'no',
    ]);
    await waitUntil('Redis', () => this.isHealthy(ctx), 30_000, join(ctx.layout.stateDir, 'redis.log'));
  },
};
