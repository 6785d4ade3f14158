import type { z } from 'zod';
import type { redisMemoryPressureInput } from '../common/inputs/redis-memory-pressure';
import { memoryBytes, raisedMemoryLimit } from '../common/quantity';
import type { RunbookRun } from './kernel/runbook-run';
import { read, wait } from './activity-proxies';
import { containerMemoryLimit, keysWithoutTtl, memoryState, memoryUsage, mib } from './redis-memory-pressure-plans';
import type { RedisMemoryPressureStep } from './redis-memory-pressure';

/** redisMemoryPressure's diagnosis: what it reads (SCAN-based counting heartbeats its cursor) and the causes it finds. */

export type RedisMemoryCause = 'memory-pressure' | 'session-keys' | 'no-eviction';
export type Diagnosis = Awaited<ReturnType<typeof diagnose>>;
export type Input = z.infer<typeof redisMemoryPressureInput>;

/** The session keys without a TTL: counted exactly, or estimated from a sample (the share of the checked keys without one, scaled to all session keys). */
export interface KeysWithoutTtl {
  /** Exact when `sampled` is false. */
  count: number;
  sampled: boolean;
  checked: number;
}

/** Diagnosis (read-only) and classification; the memory limit to raise to, computed once from it. `withTtl`: the patched path that counts keys without a TTL. */
export async function diagnose(run: RunbookRun<RedisMemoryPressureStep>, input: Input, withTtl: boolean) {
  const { namespace, deployment, container, sessionPattern } = input;
  const memory = await run.read(
    'redis-memory',
    'INFO memory and DBSIZE',
    () => read.redisMemoryInfo(),
    (m) => `used_memory ${mib(m.usedMemory)} (peak ${mib(m.usedMemoryPeak)}), maxmemory ${m.maxmemory ? mib(m.maxmemory) : 'none'}, fragmentation ${m.memFragmentationRatio}, ${m.dbsize} keys`,
  );
  const policy = await run.read(
    'maxmemory-policy',
    'maxmemory-policy',
    () => read.getMaxmemoryPolicy(),
    (p) => p.policy,
  );
  const sessions = await run.read(
    'session-keys',
    `Keys matching ${sessionPattern}`,
    () => wait.countRedisKeys({ pattern: sessionPattern }),
    (c) => `${c.count} keys (${c.scans} SCAN calls)`,
  );
  const withoutTtl = withTtl ? await countWithoutTtl(run, input, sessions.count) : undefined;
  const memoryLimit = await run.read(
    'memory-limit',
    `Memory limit of ${namespace}/${deployment} container ${container}`,
    async () => containerMemoryLimit(await read.snapshotNamespaceConfig({ namespace }), deployment, container) ?? null,
    (limit) => limit ?? 'no memory limit',
  );

  const limitBytes = memoryBytes(memoryLimit ?? undefined);
  const usage = memoryUsage(memory, limitBytes);
  const sessionShare = memory.dbsize > 0 ? sessions.count / memory.dbsize : 0;
  const causes: RedisMemoryCause[] = [];
  const underPressure = usage !== null && usage >= input.raiseWhenUsageAbove;
  if (underPressure) causes.push('memory-pressure');
  if (sessions.count > 0 && sessionShare >= input.sessionShareAbove) causes.push('session-keys');
  if (policy.policy === 'noeviction') causes.push('no-eviction');
  const before = memoryState(memory, sessions.count, policy.policy, memoryLimit, withoutTtl?.count);

  // Computed once from the diagnosis: a retried apply, a re-plan after approval or a replayed run
  // all aim at the same value, so the limit is raised once.
  const target = raisedMemoryLimit(limitBytes, input.memoryLimitFactor, input.maxMemoryLimit);
  const raiseWanted = underPressure && target !== undefined && memoryBytes(target)! > limitBytes!;
  return { memory, policy: policy.policy, sessions, withoutTtl, memoryLimit, limitBytes, usage, sessionShare, causes, underPressure, before, target, raiseWanted };
}

/** 设置过期时间: how many session keys have no TTL (SCAN + pipelined TTL, a sample of ttlSampleSize keys when there are more). */
async function countWithoutTtl(run: RunbookRun<RedisMemoryPressureStep>, input: Input, sessionKeys: number): Promise<KeysWithoutTtl> {
  const { sessionPattern, ttlSampleSize } = input;
  return run.read(
    'session-keys-without-ttl',
    `Keys matching ${sessionPattern} without a TTL`,
    // Sampled: the share of the checked keys without a TTL, scaled to the keys counted just before.
    async () => keysWithoutTtl(await wait.countRedisKeysWithoutTtl({ pattern: sessionPattern, sampleSize: ttlSampleSize }), sessionKeys),
    (k) => (k.sampled ? `about ${k.count} keys without a TTL (estimated from ${k.checked} keys checked)` : `${k.count} of ${k.checked} keys without a TTL`),
  );
}
