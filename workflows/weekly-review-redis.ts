import type { CheckRow } from '../common/checklist';
import type { Checklist } from './kernel/checklist';
import { read, wait } from './activity-proxies';
import { keysWithoutTtl } from './redis-memory-pressure-plans';
import type { WeeklyInput } from './weekly-review-database';

/** weeklyReview's Redis row: the manual's Redis优化 → 设置过期时间, read-only (the remedy is redisMemoryPressure's set-session-ttl step). */

export const redisSection = 'Redis优化';

/** Runs begun before this patch have no Redis row; their histories replay without it. */
export const weeklyRedisTtlPatch = 'weekly-redis-ttl';

/**
 * The keys of the allowlisted pattern without a TTL: SCAN + pipelined TTL, estimated from a sample
 * when there are many (countRedisKeysWithoutTtl, as redisMemoryPressure counts them). Any of them
 * is a WARN: such keys stay until deleted or evicted. A pattern outside the allowlist is a WARN
 * row saying so (the check could not run), like an unreachable Redis.
 */
export function checkKeysWithoutTtl(checklist: Checklist, input: WeeklyInput): Promise<CheckRow[]> {
  const pattern = input.sessionPattern;
  return checklist.check('redis-keys-ttl', redisSection, `Keys matching ${pattern} without a TTL (设置过期时间)`, async (row) => {
    await read.assertTargetsAllowed({ redisKeyPatterns: [pattern] });
    const all = await wait.countRedisKeys({ pattern });
    const k = keysWithoutTtl(await wait.countRedisKeysWithoutTtl({ pattern }), all.count);
    const about = k.sampled ? 'about ' : '';
    return [
      row({
        id: 'redis.keys-without-ttl',
        title: `Redis keys matching ${pattern} without a TTL`,
        status: k.count > 0 ? 'WARN' : 'PASS',
        value: `${about}${k.count} of ${all.count}`,
        threshold: '0 (设置过期时间: every such key expires)',
        detail:
          k.count > 0
            ? `${k.sampled ? `estimated from ${k.checked} keys checked; ` : ''}they stay until deleted or evicted: redisMemoryPressure's set-session-ttl step gives them the manual's TTL (sessionTtlSeconds, 3600 s), capped and approved`
            : `every one of the ${all.count} keys has a TTL`,
      }),
    ];
  });
}
