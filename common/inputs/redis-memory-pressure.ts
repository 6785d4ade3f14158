import { z } from 'zod';
import { runbookInputBase } from '../runbook';
import { kubeName, memoryLimitQuantity, redisKeyPattern } from './fields';

/**
 * The TTL (seconds) set on keys without one (Redis优化 → 设置过期时间: the manual's 3600): at least a
 * minute (less would be a deletion in all but name), at most 30 days. The activity checks the same bounds.
 */
export const keyTtlBounds = { min: 60, max: 2_592_000, default: 3600 } as const;

/** 场景3 Redis 内存压力: the manual's names are the defaults. */
export const redisMemoryPressureInput = z
  .object({
    ...runbookInputBase,
    namespace: kubeName.default('short-drama-prod'),
    /** The Redis Deployment whose memory limit is raised. */
    deployment: kubeName.default('redis'),
    container: kubeName.default('redis'),
    /** Session keys the manual lets go (must also be allowlisted in configuration). */
    sessionPattern: redisKeyPattern.default('session:*'),
    /** At most this many session keys are deleted in one run, and at most this many given a TTL. */
    maxKeys: z.number().int().min(1, { message: 'at least 1 key' }).max(10_000_000).default(100_000),
    /** The TTL (seconds) set on session keys that have none (the manual's `expire(key, 3600)`); keys with a TTL keep theirs. */
    sessionTtlSeconds: z
      .number()
      .int({ message: 'expected whole seconds' })
      .min(keyTtlBounds.min, { message: `at least ${keyTtlBounds.min} seconds (a shorter TTL is a deletion: use the delete step)` })
      .max(keyTtlBounds.max, { message: `at most ${keyTtlBounds.max} seconds (30 days)` })
      .default(keyTtlBounds.default),
    /** How many session keys the diagnosis checks for a TTL (pipelined TTL); above it, the count without a TTL is estimated from the sample. */
    ttlSampleSize: z.number().int().min(100, { message: 'at least 100 keys' }).max(1_000_000, { message: 'at most 1000000 keys' }).default(10_000),
    /** The new memory limit is the current one times this factor, capped by maxMemoryLimit. */
    memoryLimitFactor: z.number().gt(1, { message: 'must be above 1 (the limit is raised, never lowered)' }).max(4, { message: 'at most 4' }).default(1.5),
    maxMemoryLimit: memoryLimitQuantity.default('4Gi'),
    /** Memory usage (used_memory of maxmemory, or of the container limit without maxmemory) from which raising the limit (and maxmemory, when set) is proposed; 0: always. */
    raiseWhenUsageAbove: z.number().min(0).max(1, { message: 'a fraction of the memory limit, at most 1' }).default(0.85),
    /**
     * Redis' maxmemory is never raised above this share of the container's (new) memory limit:
     * the rest is headroom for fragmentation, fork copy-on-write and client buffers.
     */
    maxmemoryShareOfLimit: z
      .number()
      .gt(0, { message: 'a fraction of the container memory limit, above 0' })
      .max(0.95, { message: 'at most 0.95 (Redis needs headroom above maxmemory for fragmentation, forks and buffers)' })
      .default(0.8),
    /** How long a raised memory limit's rollout (Redis restarts) may take before the run stops. */
    rolloutTimeoutSeconds: z.number().int({ message: 'expected whole seconds' }).min(10, { message: 'at least 10 seconds' }).max(3600, { message: 'at most 3600 seconds (1 hour)' }).default(300),
    /** Session keys (of DBSIZE) from which the session keys are named as the cause. */
    sessionShareAbove: z.number().min(0).max(1, { message: 'a fraction of all keys, at most 1' }).default(0.5),
    /** The eviction policy set when it is not already. */
    maxmemoryPolicy: z.enum(['allkeys-lru', 'allkeys-lfu', 'allkeys-random', 'volatile-lru', 'volatile-lfu', 'volatile-random', 'volatile-ttl']).default('allkeys-lru'),
  })
  .strict();

export type RedisMemoryPressureInput = z.input<typeof redisMemoryPressureInput>;
