import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Redis from 'ioredis';
import { ensureDebianPackages } from './install';
import { port } from './layout';
import { startDetached, waitUntil } from './processes';
import type { TestbedContext, TestbedServer } from './context';
import { prodAddress } from './node/node-prod';

function hostRedisUrl(ctx: TestbedContext): string {
  return `redis://:${encodeURIComponent(ctx.secrets.redisPassword)}@127.0.0.1:${port(ctx.layout, 'redis')}/0`;
}

/** short-drama-prod's Redis: the host process, or the pod through its NodePort (TESTBED_REAL_NODE=1). */
export function redisUrl(ctx: TestbedContext): string {
  return `redis://:${encodeURIComponent(ctx.secrets.redisPassword)}@${prodAddress(ctx.layout, 'redis', `127.0.0.1:${port(ctx.layout, 'redis')}`)}/0`;
}

/** Redis' settings, the same for the host process and the pod: the test bed's password, no persistence, maxmemory 256 MiB. */
export function redisSettings(ctx: TestbedContext): [string, string][] {
  return [
    ['requirepass', ctx.secrets.redisPassword],
    ['save', ''],
    ['appendonly', 'no'],
    ['maxmemory', '256mb'],
  ];
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
      ...redisSettings(ctx).flatMap(([name, value]) => [`--${name}`, value]),
      '--dir',
      dir,
      '--daemonize',
      'no',
    ]);
    await waitUntil('Redis', () => this.isHealthy(ctx), 30_000, join(ctx.layout.stateDir, 'redis.log'));
  },
};
