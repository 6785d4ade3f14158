import type { RedisMemoryPressureStep } from './redis-memory-pressure';
import type { NamespaceSnapshot } from '../activities/kubernetes-config';
import type { RedisMemoryInfo } from '../activities/redis';
import type { z } from 'zod';
import type { redisMemoryPressureInput } from '../common/inputs/redis-memory-pressure';
import { memoryBytes } from '../common/quantity';
import type { IncidentFindings } from '../common/runbook';
import type { ChangeOutcome } from './kernel/runbook-run';
import { containerOf, deploymentOf } from './deployment-spec';
import type { KeysWithoutTtl } from './redis-memory-pressure-diagnosis';

// redisMemoryPressure's arithmetic and texts: Redis' memory as read, the maxmemory to raise to, the lines of its report.

export interface RedisMemoryState {
  usedMemory: number;
  maxmemory: number;
  /** used_memory of maxmemory, or of the container's memory limit when Redis has no maxmemory; null without either. */
  usage: number | null;
  dbsize: number;
  sessionKeys: number;
  /** Session keys without a TTL (estimated from a sample when there are many); absent on runs from before the count. */
  sessionKeysWithoutTtl?: number;
  maxmemoryPolicy: string;
  /** The Redis container's memory limit in the Deployment, as written there. */
  memoryLimit?: string;
}

export interface MaxmemoryTarget {
  bytes: number;
  /** `ratio`: the same share of the raised container limit; `factor`: maxmemory × memoryLimitFactor. */
  basis: 'ratio' | 'factor';
  /** Limited to maxmemoryShareOfLimit of the container limit. */
  capped: boolean;
  /** The container limit (bytes) the cap is a share of, when there is one. */
  limitBytes?: number;
}

/**
 * The maxmemory to raise to, from the diagnosis alone (so a retry, a re-plan or a replay aims at
 * the same value): when the container limit is raised, maxmemory keeps its share of the limit
 * (maxmemory × newLimit / oldLimit); otherwise maxmemory × factor. Never above `share` of the
 * (new) container limit when there is one. Whole bytes, rounded down; undefined without maxmemory.
 */
export function raisedMaxmemory(o: { maxmemory: number; limitBytes?: number; newLimitBytes?: number; factor: number; share: number }): MaxmemoryTarget | undefined {
  if (!(o.maxmemory > 0)) return undefined;
  const limitRaised = o.limitBytes !== undefined && o.newLimitBytes !== undefined && o.newLimitBytes > o.limitBytes;
  const wanted = Math.floor(limitRaised ? o.maxmemory * (o.newLimitBytes! / o.limitBytes!) : o.maxmemory * o.factor);
  const limitBytes = limitRaised ? o.newLimitBytes : o.limitBytes;
  const cap = limitBytes ? Math.floor(limitBytes * o.share) : undefined;
  const capped = cap !== undefined && cap < wanted;
  return { bytes: capped ? cap : wanted, basis: limitRaised ? 'ratio' : 'factor', capped, ...(limitBytes ? { limitBytes } : {}) };
}

/**
 * Keys without a TTL from countRedisKeysWithoutTtl: exact when it scanned everything, else the share
 * of the keys it checked without one, scaled to the pattern's count.
 */
export function keysWithoutTtl(c: { withoutTtl: number; checked: number; complete: boolean }, matching: number): KeysWithoutTtl {
  const count = c.complete ? c.withoutTtl : Math.round((c.withoutTtl / Math.max(c.checked, 1)) * matching);
  return { count, sampled: !c.complete, checked: c.checked };
}

export const percent = (usage: number | null) => (usage === null ? 'unknown (no maxmemory, no limit)' : `${(usage * 100).toFixed(usage < 0.1 ? 2 : 0)}%`);
export const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)}MiB`;

export function containerMemoryLimit(snapshot: NamespaceSnapshot, deployment: string, container: string): string | undefined {
  return containerOf({ namespace: snapshot.namespace, deployment }, deploymentOf(snapshot, deployment).containers, container).limits?.memory;
}

/** used_memory of maxmemory, else of the container's memory limit; null without either. */
export function memoryUsage(m: { usedMemory: number; maxmemory: number }, limitBytes: number | undefined): number | null {
  return m.maxmemory > 0 ? m.usedMemory / m.maxmemory : limitBytes ? m.usedMemory / limitBytes : null;
}

/** Redis' memory as read: INFO memory and DBSIZE, the session keys, maxmemory-policy and the container's memory limit. */
export function memoryState(
  m: { usedMemory: number; maxmemory: number; dbsize: number },
  sessionKeys: number,
  maxmemoryPolicy: string,
  memoryLimit: string | null | undefined,
  sessionKeysWithoutTtl?: number,
): RedisMemoryState {
  return {
    usedMemory: m.usedMemory,
    maxmemory: m.maxmemory,
    usage: memoryUsage(m, memoryBytes(memoryLimit ?? undefined)),
    dbsize: m.dbsize,
    sessionKeys,
    ...(sessionKeysWithoutTtl !== undefined ? { sessionKeysWithoutTtl } : {}),
    maxmemoryPolicy,
    ...(memoryLimit ? { memoryLimit } : {}),
  };
}

/** What the texts speak of: the run's input and the diagnosis (redisMemoryPressure's steps share it). */
export interface Diagnosed {
  input: z.infer<typeof redisMemoryPressureInput>;
  withMaxmemory: boolean;
  memory: RedisMemoryInfo;
  policy: string;
  sessions: { count: number };
  /** Session keys without a TTL; undefined on runs from before the count (not patched). */
  withoutTtl: KeysWithoutTtl | undefined;
  memoryLimit: string | null;
  limitBytes: number | undefined;
  usage: number | null;
  sessionShare: number;
  causes: string[];
  /** The memory limit the run raises to, computed once from the diagnosis. */
  target: string | undefined;
}

/** Names the container limit (in bytes) a maxmemory target is a share of, as written in the Deployment. */
export function limitText(d: Diagnosed, bytes: number | undefined): string {
  return bytes === undefined ? 'none' : bytes === d.limitBytes ? d.memoryLimit! : d.target!;
}

/** Why maxmemory goes to its target: the share of the raised limit kept, or the factor; and the cap. */
export function maxmemoryWhy(d: Diagnosed, t: MaxmemoryTarget, share: string): string {
  const basis =
    t.basis === 'ratio'
      ? `keeps maxmemory at ${percent(d.memory.maxmemory / d.limitBytes!)} of the container limit, raised ${d.memoryLimit} -> ${d.target}`
      : `x${d.input.memoryLimitFactor}, ${d.limitBytes ? `container limit ${d.memoryLimit} not raised` : 'no container limit'}`;
  return `${basis}${t.capped ? `; capped at ${share} of the container limit ${limitText(d, t.limitBytes)}` : ''}`;
}

/** The incident report's findings; `outcomeOf` is the run's, `maxmemoryTarget` what raise-maxmemory aimed at. */
export function pressureFindings(d: Diagnosed, outcomeOf: (stepId: RedisMemoryPressureStep) => ChangeOutcome | undefined, maxmemoryTarget: MaxmemoryTarget | undefined): IncidentFindings {
  const { input, memory, policy, memoryLimit, causes } = d;
  const atMaxmemory =
    policy === 'noeviction' ? `writes fail with OOM errors ("OOM command not allowed when used memory > 'maxmemory'") once maxmemory is reached` : 'keys are evicted once maxmemory is reached';
  return {
    impact: `Redis uses ${mib(memory.usedMemory)} (${percent(d.usage)} of ${memory.maxmemory ? `maxmemory ${mib(memory.maxmemory)}` : `the container limit ${memoryLimit ?? '(none)'}`}); with maxmemory-policy ${policy} ${atMaxmemory}, and the container is OOM-killed at its limit ${memoryLimit ?? '(none)'}.`,
    rootCause: `${causes.length ? `Found: ${causes.join(', ')}. ` : 'No memory pressure found. '}${d.sessions.count} of ${memory.dbsize} keys (${percent(d.sessionShare)}) match ${input.sessionPattern}${withoutTtlText(d.withoutTtl)}; maxmemory-policy ${policy}; fragmentation ratio ${memory.memFragmentationRatio}.`,
    solution: pressureSolution(d, outcomeOf, maxmemoryTarget),
    prevention: `Give session keys a TTL (EXPIRE on write), keep an allkeys-* eviction policy, size maxmemory below the container limit (${d.target ?? memoryLimit ?? 'limit'}), and alert at 85% of maxmemory. CONFIG SET does not survive a restart (and a new memory limit restarts Redis): put maxmemory and maxmemory-policy in the Redis config (redis.conf or the container args, e.g. --maxmemory, --maxmemory-policy) so a restarted Redis keeps them.`,
  };
}

/** ", about N of them without a TTL (from a sample of C)" for the root cause; nothing on runs from before the count. */
function withoutTtlText(k: KeysWithoutTtl | undefined): string {
  if (!k) return '';
  return k.sampled ? `, about ${k.count} of them without a TTL (a sample of ${k.checked})` : `, ${k.count} of them without a TTL`;
}

/** What each step did or why it did not. */
function pressureSolution(d: Diagnosed, outcomeOf: (stepId: RedisMemoryPressureStep) => ChangeOutcome | undefined, maxmemoryTarget: MaxmemoryTarget | undefined): string {
  const { input, memory, policy } = d;
  const { namespace, deployment, sessionPattern } = input;
  const applied = (stepId: RedisMemoryPressureStep) => outcomeOf(stepId) === 'applied';
  const solution: string[] = [];
  solution.push(
    applied('delete-session-keys')
      ? `Keys matching ${sessionPattern} deleted (SCAN + UNLINK, at most ${input.maxKeys}).`
      : `Keys matching ${sessionPattern} not deleted (${outcomeOf('delete-session-keys')}).`,
  );
  if (d.withoutTtl) {
    solution.push(
      applied('set-session-ttl')
        ? `TTL ${input.sessionTtlSeconds}s set on keys matching ${sessionPattern} that had none (EXPIRE NX, at most ${input.maxKeys}).`
        : `No TTL set on keys matching ${sessionPattern} (${outcomeOf('set-session-ttl')}).`,
    );
  }
  solution.push(
    applied('raise-memory-limit')
      ? `Memory limit of ${namespace}/${deployment} raised ${d.memoryLimit} -> ${d.target}.`
      : `Memory limit of ${namespace}/${deployment} not changed (${outcomeOf('raise-memory-limit')}).`,
  );
  if (d.withMaxmemory) {
    solution.push(
      applied('raise-maxmemory')
        ? `maxmemory raised ${mib(memory.maxmemory)} -> ${mib(maxmemoryTarget!.bytes)}.`
        : `maxmemory not changed (${outcomeOf('raise-maxmemory')}; ${memory.maxmemory ? mib(memory.maxmemory) : 'none'}).`,
    );
  }
  solution.push(
    applied('set-maxmemory-policy') ? `maxmemory-policy set to ${input.maxmemoryPolicy} (was ${policy}).` : `maxmemory-policy not changed (${outcomeOf('set-maxmemory-policy')}; ${policy}).`,
  );
  solution.push('CONFIG SET changes last only until Redis restarts: maxmemory and maxmemory-policy must also go into the Redis config (redis.conf or the container args).');
  return solution.join(' ');
}
