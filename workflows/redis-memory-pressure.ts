import { patched } from '@temporalio/workflow';
import type { NamespaceSnapshot } from '../activities/kubernetes-config';
import { type RedisMemoryPressureInput } from '../common/inputs/redis-memory-pressure';
import { memoryBytes, raisedMemoryLimit } from '../common/quantity';
import { rolesFrom, type RunbookResultBase } from '../common/runbook';
import { containerOf, deploymentOf } from './deployment-spec';
import { RunbookRun } from './kernel/runbook-run';
import { waitForRollout } from './rollout-wait';
import { validateInput } from './validate-input';
import { read, wait, write } from './activity-proxies';
import { catalog } from '../common/catalog';

/** SCAN-based counting and deleting heartbeat their cursor. */

/**
 * Runs started before this patch neither wait for the rollout after raising the memory limit nor
 * have the raise-maxmemory step; their histories replay on the old path.
 */
export const raiseMaxmemoryPatch = 'redis-raise-maxmemory';

export type RedisMemoryCause = 'memory-pressure' | 'session-keys' | 'no-eviction';

export interface RedisMemoryState {
  usedMemory: number;
  maxmemory: number;
  /** used_memory of maxmemory, or of the container's memory limit when Redis has no maxmemory; null without either. */
  usage: number | null;
  dbsize: number;
  sessionKeys: number;
  maxmemoryPolicy: string;
  /** The Redis container's memory limit in the Deployment, as written there. */
  memoryLimit?: string;
}

export interface RedisMemoryPressureResult extends RunbookResultBase {
  /** What the diagnosis found; empty when Redis looks healthy. */
  causes: RedisMemoryCause[];
  before: RedisMemoryState;
  after?: RedisMemoryState;
  /** The memory limit the run raises to (computed once from the diagnosis), when raising was wanted. */
  targetMemoryLimit?: string;
  /** The maxmemory (bytes) the run raises to (computed once from the diagnosis), when raising was wanted. */
  targetMaxmemory?: number;
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

const percent = (usage: number | null) => (usage === null ? 'unknown (no maxmemory, no limit)' : `${(usage * 100).toFixed(usage < 0.1 ? 2 : 0)}%`);
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)}MiB`;

function containerMemoryLimit(snapshot: NamespaceSnapshot, deployment: string, container: string): string | undefined {
  return containerOf({ namespace: snapshot.namespace, deployment }, deploymentOf(snapshot, deployment).containers, container).limits?.memory;
}

/** used_memory of maxmemory, else of the container's memory limit; null without either. */
function memoryUsage(m: { usedMemory: number; maxmemory: number }, limitBytes: number | undefined): number | null {
  return m.maxmemory > 0 ? m.usedMemory / m.maxmemory : limitBytes ? m.usedMemory / limitBytes : null;
}

/** Redis' memory as read: INFO memory and DBSIZE, the session keys, maxmemory-policy and the container's memory limit. */
function memoryState(m: { usedMemory: number; maxmemory: number; dbsize: number }, sessionKeys: number, maxmemoryPolicy: string, memoryLimit: string | null | undefined): RedisMemoryState {
  return {
    usedMemory: m.usedMemory,
    maxmemory: m.maxmemory,
    usage: memoryUsage(m, memoryBytes(memoryLimit ?? undefined)),
    dbsize: m.dbsize,
    sessionKeys,
    maxmemoryPolicy,
    ...(memoryLimit ? { memoryLimit } : {}),
  };
}

/**
 * 场景3 Redis 内存压力: INFO memory, DBSIZE, maxmemory-policy, the number of session keys and the
 * Redis container's memory limit; ⚠ delete the session keys (SCAN + UNLINK in batches, resumable,
 * capped), ⚠ raise the Deployment's memory limit (×factor, capped; the target is computed once from
 * the diagnosis, so a retry or a re-plan never raises twice; the new pod template restarts Redis,
 * so the run waits for the rollout), ⚠ raise Redis' own maxmemory when it is set and used above the
 * threshold (Redis refuses writes at maxmemory whatever the container limit; same share of the
 * raised limit, else ×factor, never above maxmemoryShareOfLimit of the limit; computed once) and
 * ⚠ set maxmemory-policy allkeys-lru; then reads everything again.
 */
export async function redisMemoryPressure(raw: RedisMemoryPressureInput): Promise<RedisMemoryPressureResult> {
  const input = validateInput(catalog.redisMemoryPressure, raw);
  const { namespace, deployment, container, sessionPattern } = input;
  // Every command the patch adds (the rollout wait, the raise-maxmemory step) is behind this.
  const withMaxmemory = patched(raiseMaxmemoryPatch);
  const run = await RunbookRun.begin(catalog.redisMemoryPressure, input, withMaxmemory ? 10 : 9);
  await read.assertTargetsAllowed({
    namespaces: [namespace],
    names: [
      { name: deployment, what: 'deployment' },
      { name: container, what: 'container' },
    ],
  });

  // Diagnosis (read-only).
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
  const memoryLimit = await run.read(
    'memory-limit',
    `Memory limit of ${namespace}/${deployment} container ${container}`,
    async () => containerMemoryLimit(await read.snapshotNamespaceConfig({ namespace }), deployment, container) ?? null,
    (limit) => limit ?? 'no memory limit',
  );

  // Classification.
  const limitBytes = memoryBytes(memoryLimit ?? undefined);
  const usage = memoryUsage(memory, limitBytes);
  const sessionShare = memory.dbsize > 0 ? sessions.count / memory.dbsize : 0;
  const causes: RedisMemoryCause[] = [];
  const underPressure = usage !== null && usage >= input.raiseWhenUsageAbove;
  if (underPressure) causes.push('memory-pressure');
  if (sessions.count > 0 && sessionShare >= input.sessionShareAbove) causes.push('session-keys');
  if (policy.policy === 'noeviction') causes.push('no-eviction');
  const before = memoryState(memory, sessions.count, policy.policy, memoryLimit);

  await run.change({
    stepId: 'delete-session-keys',
    title: `Delete keys matching ${sessionPattern}`,
    plan: async () => {
      const dry = await wait.deleteRedisKeys({ pattern: sessionPattern, maxKeys: input.maxKeys, dryRun: true });
      return {
        summary: `delete keys matching ${sessionPattern} (SCAN + UNLINK in batches), at most ${input.maxKeys}`,
        needed: (dry.wouldDelete ?? 0) > 0,
        observed: { matching: dry.matching, wouldDelete: dry.wouldDelete, capped: dry.capped },
      };
    },
    apply: async () => {
      const done = await wait.deleteRedisKeys({ pattern: sessionPattern, maxKeys: input.maxKeys });
      return `deleted ${done.deleted ?? 0} keys matching ${sessionPattern} in ${done.batches} UNLINK batches${done.capped ? ' (cap reached, keys may remain)' : ''}${done.resumedFrom ? ` (resumed after ${done.resumedFrom.deleted})` : ''}`;
    },
  });

  // Computed once from the diagnosis: a retried apply, a re-plan after approval or a replayed run
  // all aim at the same value, so the limit is raised once.
  const target = raisedMemoryLimit(limitBytes, input.memoryLimitFactor, input.maxMemoryLimit);
  const raiseWanted = underPressure && target !== undefined && memoryBytes(target)! > limitBytes!;

  /** A new pod template restarts Redis: wait until the new pod is ready before any CONFIG SET (it would be lost with the old pod). */
  const waitForRedisRollout = (done: string) => waitForRollout({ namespace, deployment }, input.rolloutTimeoutSeconds, `${done} (Redis restarting)`);
  await run.change({
    stepId: 'raise-memory-limit',
    title: `Raise the memory limit of ${namespace}/${deployment}`,
    allowedRoles: rolesFrom('l2'),
    plan: async () => {
      if (!memoryLimit) return { summary: `${namespace}/${deployment} container ${container} has no memory limit to raise`, needed: false };
      if (!underPressure) return { summary: `memory limit stays ${memoryLimit} (usage ${percent(usage)} below ${percent(input.raiseWhenUsageAbove)})`, needed: false };
      if (!raiseWanted) return { summary: `memory limit stays ${memoryLimit} (already at the cap ${input.maxMemoryLimit})`, needed: false };
      const dry = await read.setContainerResources({ namespace, deployment, container, limits: { memory: target }, dryRun: true });
      return {
        summary: `memory limit of ${namespace}/${deployment} container ${container} ${memoryLimit} -> ${target} (x${input.memoryLimitFactor}, cap ${input.maxMemoryLimit})${
          withMaxmemory ? '; changes the pod template, so Redis RESTARTS: CONFIG SET values are lost, and so is its data without persistence (RDB/AOF on a volume)' : ''
        }`,
        details: { from: memoryLimit, to: target },
        needed: dry.changed,
        observed: { current: dry.before.limits.memory },
      };
    },
    apply: async () => {
      const done = await write.setContainerResources({ namespace, deployment, container, limits: { memory: target } });
      const text = done.changed ? `${done.message}: limits.memory ${done.before.limits.memory ?? 'none'} -> ${done.after.limits.memory}` : `limits.memory already ${done.after.limits.memory}`;
      if (!withMaxmemory) return text;
      // Also when already raised (a retry): the earlier attempt's rollout may still be going on.
      const rollout = await waitForRedisRollout(text);
      return `${text}; Redis restarted: rollout complete in ${Math.round(rollout.waitedMs / 1000)}s (${rollout.readyReplicas}/${rollout.replicas} ready)`;
    },
  });

  // Redis refuses writes ("OOM command not allowed when used memory > 'maxmemory'") at its own
  // maxmemory, whatever the container limit: with maxmemory set, that is what has to go up.
  // The target is computed once, from the diagnosis and whether the limit was raised (or, in plan
  // mode, would be): a retry, a re-plan or a replay aims at the same value.
  let maxmemoryTarget: MaxmemoryTarget | undefined;
  if (withMaxmemory) {
    const limitRaised = ['applied', 'planned'].includes(run.outcomeOf('raise-memory-limit') ?? '');
    maxmemoryTarget = raisedMaxmemory({
      maxmemory: memory.maxmemory,
      ...(limitBytes ? { limitBytes } : {}),
      ...(limitRaised && target ? { newLimitBytes: memoryBytes(target)! } : {}),
      factor: input.memoryLimitFactor,
      share: input.maxmemoryShareOfLimit,
    });
    const mt = maxmemoryTarget;
    const share = `${Math.round(input.maxmemoryShareOfLimit * 100)}%`;
    const limitText = (bytes: number | undefined) => (bytes === undefined ? 'none' : bytes === limitBytes ? memoryLimit! : target!);
    const why = (t: MaxmemoryTarget) =>
      `${t.basis === 'ratio' ? `keeps maxmemory at ${percent(memory.maxmemory / limitBytes!)} of the container limit, raised ${memoryLimit} -> ${target}` : `x${input.memoryLimitFactor}, ${limitBytes ? `container limit ${memoryLimit} not raised` : 'no container limit'}`}${
        t.capped ? `; capped at ${share} of the container limit ${limitText(t.limitBytes)}` : ''
      }`;
    await run.change({
      stepId: 'raise-maxmemory',
      title: 'Raise Redis maxmemory',
      allowedRoles: rolesFrom('l2'),
      plan: async () => {
        if (!mt) return { summary: 'Redis has no maxmemory (0): nothing to raise (only the container limit bounds it)', needed: false };
        if (!underPressure) return { summary: `maxmemory stays ${mib(memory.maxmemory)} (usage ${percent(usage)} of maxmemory below ${percent(input.raiseWhenUsageAbove)})`, needed: false };
        if (mt.bytes <= memory.maxmemory) {
          return { summary: `maxmemory stays ${mib(memory.maxmemory)}: already at or above ${share} of the container limit ${limitText(mt.limitBytes)} (${mib(mt.bytes)})`, needed: false };
        }
        const dry = await read.setMaxmemory({ bytes: mt.bytes, dryRun: true });
        if (dry.before >= mt.bytes) return { summary: `maxmemory is already ${mib(dry.before)} (target ${mib(mt.bytes)})`, needed: false, observed: { current: dry.before } };
        return {
          summary: `CONFIG SET maxmemory ${mib(dry.before)} -> ${mib(mt.bytes)} (used_memory ${percent(usage)} of maxmemory, Redis refuses writes at maxmemory; ${why(mt)}); lost on restart: set maxmemory in the Redis config too`,
          details: { from: dry.before, to: mt.bytes },
          needed: true,
        };
      },
      apply: async () => {
        const done = await write.setMaxmemory({ bytes: mt!.bytes });
        return done.changed ? `maxmemory ${mib(done.before)} -> ${mib(done.after)} (${done.after} bytes)` : `maxmemory already ${mib(done.after)}`;
      },
    });
  }

  await run.change({
    stepId: 'set-maxmemory-policy',
    title: `Set maxmemory-policy ${input.maxmemoryPolicy}`,
    allowedRoles: rolesFrom('l2'),
    plan: async () => {
      const dry = await read.setMaxmemoryPolicy({ policy: input.maxmemoryPolicy, dryRun: true });
      if (dry.before === input.maxmemoryPolicy) return { summary: `maxmemory-policy is already ${input.maxmemoryPolicy}`, needed: false };
      return { summary: `CONFIG SET maxmemory-policy ${dry.before} -> ${input.maxmemoryPolicy}`, details: { from: dry.before, to: input.maxmemoryPolicy }, needed: true };
    },
    apply: async () => {
      const done = await write.setMaxmemoryPolicy({ policy: input.maxmemoryPolicy });
      return done.changed ? `maxmemory-policy ${done.before} -> ${done.after}` : `maxmemory-policy already ${done.after}`;
    },
  });

  let after: RedisMemoryState | undefined;
  if (input.mode === 'execute') {
    after = await run.read(
      'verify',
      'Redis memory, session keys, policy and memory limit after the changes',
      async () => {
        const [m, p, s, snapshot] = await Promise.all([
          read.redisMemoryInfo(),
          read.getMaxmemoryPolicy(),
          wait.countRedisKeys({ pattern: sessionPattern }),
          read.snapshotNamespaceConfig({ namespace }),
        ]);
        return memoryState(m, s.count, p.policy, containerMemoryLimit(snapshot, deployment, container));
      },
      (s) =>
        `used_memory ${mib(s.usedMemory)} (${percent(s.usage)}), maxmemory ${s.maxmemory ? mib(s.maxmemory) : 'none'}, ${s.dbsize} keys, ${s.sessionKeys} matching ${sessionPattern}, maxmemory-policy ${s.maxmemoryPolicy}, memory limit ${s.memoryLimit ?? 'none'}`,
    );
  }

  const applied = (stepId: string) => run.outcomeOf(stepId) === 'applied';
  const solution: string[] = [];
  solution.push(
    applied('delete-session-keys')
      ? `Keys matching ${sessionPattern} deleted (SCAN + UNLINK, at most ${input.maxKeys}).`
      : `Keys matching ${sessionPattern} not deleted (${run.outcomeOf('delete-session-keys')}).`,
  );
  solution.push(
    applied('raise-memory-limit')
      ? `Memory limit of ${namespace}/${deployment} raised ${memoryLimit} -> ${target}.`
      : `Memory limit of ${namespace}/${deployment} not changed (${run.outcomeOf('raise-memory-limit')}).`,
  );
  if (withMaxmemory) {
    solution.push(
      applied('raise-maxmemory')
        ? `maxmemory raised ${mib(memory.maxmemory)} -> ${mib(maxmemoryTarget!.bytes)}.`
        : `maxmemory not changed (${run.outcomeOf('raise-maxmemory')}; ${memory.maxmemory ? mib(memory.maxmemory) : 'none'}).`,
    );
  }
  solution.push(
    applied('set-maxmemory-policy')
      ? `maxmemory-policy set to ${input.maxmemoryPolicy} (was ${policy.policy}).`
      : `maxmemory-policy not changed (${run.outcomeOf('set-maxmemory-policy')}; ${policy.policy}).`,
  );
  solution.push('CONFIG SET changes last only until Redis restarts: maxmemory and maxmemory-policy must also go into the Redis config (redis.conf or the container args).');
  const result = await run.finish(
    `${causes.length ? causes.join(', ') : 'no memory pressure found'}; used_memory ${mib(before.usedMemory)} (${percent(before.usage)}), ${before.sessionKeys} session keys${after ? `; after: ${mib(after.usedMemory)}, ${after.sessionKeys} session keys, ${after.maxmemoryPolicy}, limit ${after.memoryLimit ?? 'none'}` : ''}`,
    {
      impact: `Redis uses ${mib(memory.usedMemory)} (${percent(usage)} of ${memory.maxmemory ? `maxmemory ${mib(memory.maxmemory)}` : `the container limit ${memoryLimit ?? '(none)'}`}); with maxmemory-policy ${policy.policy} ${policy.policy === 'noeviction' ? `writes fail with OOM errors ("OOM command not allowed when used memory > 'maxmemory'") once maxmemory is reached` : 'keys are evicted once maxmemory is reached'}, and the container is OOM-killed at its limit ${memoryLimit ?? '(none)'}.`,
      rootCause: `${causes.length ? `Found: ${causes.join(', ')}. ` : 'No memory pressure found. '}${sessions.count} of ${memory.dbsize} keys (${percent(sessionShare)}) match ${sessionPattern}; maxmemory-policy ${policy.policy}; fragmentation ratio ${memory.memFragmentationRatio}.`,
      solution: solution.join(' '),
      prevention: `Give session keys a TTL (EXPIRE on write), keep an allkeys-* eviction policy, size maxmemory below the container limit (${target ?? memoryLimit ?? 'limit'}), and alert at 85% of maxmemory. CONFIG SET does not survive a restart (and a new memory limit restarts Redis): put maxmemory and maxmemory-policy in the Redis config (redis.conf or the container args, e.g. --maxmemory, --maxmemory-policy) so a restarted Redis keeps them.`,
    },
  );
  return {
    ...result,
    causes,
    before,
    ...(after ? { after } : {}),
    ...(raiseWanted && target ? { targetMemoryLimit: target } : {}),
    ...(maxmemoryTarget && underPressure && maxmemoryTarget.bytes > memory.maxmemory ? { targetMaxmemory: maxmemoryTarget.bytes } : {}),
  };
}
