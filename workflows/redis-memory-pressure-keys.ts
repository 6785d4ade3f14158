import { wait } from './activity-proxies';
import type { Pressure } from './redis-memory-pressure';

// redisMemoryPressure's steps on the session keys: delete them, or give those without a TTL the manual's TTL. Both capped and resumable (one pass in activities/redis.ts).

/** ⚠ delete the session keys: SCAN + UNLINK in batches, capped at maxKeys, resumable. */
export async function deleteSessionKeysStep({ run, input }: Pressure): Promise<void> {
  const { sessionPattern, maxKeys } = input;
  await run.change({
    stepId: 'delete-session-keys',
    title: `Delete keys matching ${sessionPattern}`,
    plan: async () => {
      const dry = await wait.deleteRedisKeys({ pattern: sessionPattern, maxKeys, dryRun: true });
      return {
        summary: `delete keys matching ${sessionPattern} (SCAN + UNLINK in batches), at most ${maxKeys}`,
        needed: (dry.wouldDelete ?? 0) > 0,
        observed: { matching: dry.matching, wouldDelete: dry.wouldDelete, capped: dry.capped },
      };
    },
    apply: async () => {
      const done = await wait.deleteRedisKeys({ pattern: sessionPattern, maxKeys });
      return `deleted ${done.deleted ?? 0} keys matching ${sessionPattern} in ${done.batches} UNLINK batches${done.capped ? ' (cap reached, keys may remain)' : ''}${done.resumedFrom ? ` (resumed after ${done.resumedFrom.deleted})` : ''}`;
    },
  });
}

/**
 * ⚠ the manual's 设置过期时间 on the session keys that have no TTL: SCAN, pipelined TTL, EXPIRE ... NX
 * in batches, capped at maxKeys, resumable (the delete's pass). After the delete step: what it
 * deleted needs no TTL, so with the delete applied in full this step has nothing to do; rejecting
 * the delete leaves this gentler remedy. Keys that have a TTL keep theirs. The count of keys
 * without a TTL moves by itself (new sessions), so it is observed, outside the plan hash.
 */
export async function setSessionTtlStep({ run, input }: Pressure): Promise<void> {
  const { sessionPattern, maxKeys, sessionTtlSeconds: ttlSeconds } = input;
  await run.change({
    stepId: 'set-session-ttl',
    title: `Set a TTL on keys matching ${sessionPattern} that have none`,
    plan: async () => {
      const dry = await wait.expireRedisKeys({ pattern: sessionPattern, ttlSeconds, maxKeys, dryRun: true });
      return {
        summary: `set TTL ${ttlSeconds}s (EXPIRE NX) on the keys without a TTL matching ${sessionPattern}, at most ${maxKeys} (SCAN + pipelined TTL, in batches); keys with a TTL keep theirs`,
        details: { ttlSeconds, maxKeys },
        needed: (dry.wouldExpire ?? 0) > 0,
        observed: { withoutTtl: dry.withoutTtl, wouldExpire: dry.wouldExpire, capped: dry.capped },
      };
    },
    apply: async () => {
      const done = await wait.expireRedisKeys({ pattern: sessionPattern, ttlSeconds, maxKeys });
      return `set TTL ${ttlSeconds}s on ${done.expired ?? 0} keys matching ${sessionPattern} in ${done.batches} EXPIRE batches${done.capped ? ' (cap reached, keys without a TTL may remain)' : ''}${done.resumedFrom ? ` (resumed after ${done.resumedFrom.expired})` : ''}`;
    },
  });
}
