import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Redis from 'ioredis';
import { ensureDebianPackages } from './install';
import { port } from './layout';
import { startDetached, waitUntil } from './processes';
import type { TestbedContext, TestbedServer } from './context';

export function redisUrl(ctx: TestbedContext): string {
  return `redis://:${encodeURIComponent(ctx.secrets.redisPassword)}@127.0.0.1:${port(ctx.layout, 'redis')}/0`;
}

export const redisServer: TestbedServer = {
  name: 'redis',
  ports: ['redis'],
  install(ctx) {
    ensureDebianPackages(['redis-server'], ctx.log);
  },
  async isHealthy(ctx) {
    const redis = new Redis(redisUrl(ctx), { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null });
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
      '--requirepass',
      ctx.secrets.redisPassword,
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
      '--maxmemory',
      '256mb',
      '--daemonize',
      'no',
    ]);
    await waitUntil('Redis', () => this.isHealthy(ctx), 30_000, join(ctx.layout.stateDir, 'redis.log'));
  },
};
