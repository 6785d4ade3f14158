import type Redis from 'ioredis';
import type { PreflightRow } from '../common/preflight';
import { notConfigured, runChecks } from './preflight-checks';

export interface RedisDeps {
  /** Absent when no Redis is configured. */
  redis?: Redis;
  allowedKeyPatterns: string[];
}

/** Picks `field:value` lines out of an INFO section. */
export function parseInfo(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at > 0 && !line.startsWith('#')) fields[line.slice(0, at)] = line.slice(at + 1);
  }
  return fields;
}

export function createRedisActivities({ redis, allowedKeyPatterns }: RedisDeps) {
  return {
    async preflightRedis(): Promise<PreflightRow[]> {
      if (!redis) return notConfigured('redis');
      return runChecks('redis', [
        ['PING', async () => ({ ok: (await redis.ping()) === 'PONG', detail: 'PONG' })],
        [
          'INFO',
          async () => {
            const server = parseInfo(await redis.info('server'));
            const memory = parseInfo(await redis.info('memory'));
            return { ok: true, detail: `Redis ${server.redis_version}, used_memory ${memory.used_memory_human}, maxmemory ${memory.maxmemory_human}` };
          },
        ],
        [
          'CONFIG GET allowed',
          async () => {
            const reply = (await redis.config('GET', 'maxmemory-policy')) as string[];
            return { ok: reply.length === 2, detail: `maxmemory-policy ${reply[1]}` };
          },
        ],
        [
          'SCAN allowlisted patterns',
          async () => {
            const counts: string[] = [];
            for (const pattern of allowedKeyPatterns) {
              const [, keys] = await redis.scan('0', 'MATCH', pattern, 'COUNT', 100);
              counts.push(`${pattern}: ${keys.length}+ in first batch`);
            }
            return { ok: true, detail: counts.join('; ') || 'no patterns allowlisted' };
          },
        ],
      ]);
    },
  };
}
