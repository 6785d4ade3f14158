import { ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { NamespaceSnapshot } from '../activities/kubernetes-config';
import { redisMemoryPressureInput, type RedisMemoryPressureInput } from '../common/inputs/redis-memory-pressure';
import { memoryBytes, raisedMemoryLimit } from '../common/quantity';
import type { RunbookResultBase } from '../common/runbook';
import { destructive, longRunning, quickRead } from './activity-options';
import { RunbookRun } from './kernel/runbook-run';
import { validateInput } from './validate-input';

const read = proxyActivities<Activities>(quickRead);
const change = proxyActivities<Activities>(destructive);
/** SCAN-based counting and deleting heartbeat their cursor. */
const scan = proxyActivities<Activities>(longRunning);

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
}

const percent = (usage: number | null) => (usage === null ? 'unknown (no maxmemory, no limit)' : `${(usage * 100).toFixed(usage < 0.1 ? 2 : 0)}%`);
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)}MiB`;

function containerMemoryLimit(snapshot: NamespaceSnapshot, deployment: string, container: string): string | undefined {
  const d = snapshot.deployments.find((x) => x.name === deployment);
  if (!d) throw ApplicationFailure.create({ type: 'NotFound', nonRetryable: true, message: `deployments.apps/${deployment} not found in namespace ${snapshot.namespace}` });
  const c = d.containers.find((x) => x.name === container);
  if (!c) throw ApplicationFailure.create({ type: 'NotFound', nonRetryable: true, message: `deployments.apps/${deployment} in namespace ${snapshot.namespace} has no container ${container} (containers: ${d.containers.map((x) => x.name).join(', ')})` });
  return c.limits?.memory;
}

/**
 * 场景3 Redis 内存压力: INFO memory, DBSIZE, maxmemory-policy, the number of session keys and the
 * Redis container's memory limit; ⚠ delete the session keys (SCAN + UNLINK in batches, resumable,
 * capped), ⚠ raise the Deployment's memory limit (×factor, capped; the target is computed once from
 * the diagnosis, so a retry or a re-plan never raises twice) and ⚠ set maxmemory-policy allkeys-lru;
 * then reads everything again.
 */
export async function redisMemoryPressure(raw: RedisMemoryPressureInput): Promise<RedisMemoryPressureResult> {
  const input = validateInput('redisMemoryPressure', redisMemoryPressureInput, raw);
  const { namespace, deployment, container, sessionPattern } = input;
  const run = await RunbookRun.begin(
    { name: 'redisMemoryPressure', kind: 'fault', target: `${namespace}/${deployment}`, mode: input.mode, severity: input.severity, startedBy: input.startedBy, scheduled: input.scheduled },
    9,
  );
  await read.assertTargetsAllowed({ namespaces: [namespace], names: [{ name: deployment, what: 'deployment' }, { name: container, what: 'container' }] });

  // Diagnosis (read-only).
  const memory = await run.read('redis-memory', 'INFO memory and DBSIZE', () => read.redisMemoryInfo(), (m) =>
    `used_memory ${mib(m.usedMemory)} (peak ${mib(m.usedMemoryPeak)}), maxmemory ${m.maxmemory ? mib(m.maxmemory) : 'none'}, fragmentation ${m.memFragmentationRatio}, ${m.dbsize} keys`,
  );
  const policy = await run.read('maxmemory-policy', 'maxmemory-policy', () => read.getMaxmemoryPolicy(), (p) => p.policy);
  const sessions = await run.read('session-keys', `Keys matching ${sessionPattern}`, () => scan.countRedisKeys({ pattern: sessionPattern }), (c) => `${c.count} keys (${c.scans} SCAN calls)`);
  const memoryLimit = await run.read(
    'memory-limit',
    `Memory limit of ${namespace}/${deployment} container ${container}`,
    async () => containerMemoryLimit(await read.snapshotNamespaceConfig({ namespace }), deployment, container) ?? null,
    (limit) => limit ?? 'no memory limit',
  );

  // Classification.
  const limitBytes = memoryBytes(memoryLimit ?? undefined);
  const usage = memory.maxmemory > 0 ? memory.usedMemory / memory.maxmemory : limitBytes ? memory.usedMemory / limitBytes : null;
  const sessionShare = memory.dbsize > 0 ? sessions.count / memory.dbsize : 0;
  const causes: RedisMemoryCause[] = [];
  const underPressure = usage !== null && usage >= input.raiseWhenUsageAbove;
  if (underPressure) causes.push('memory-pressure');
  if (sessions.count > 0 && sessionShare >= input.sessionShareAbove) causes.push('session-keys');
  if (policy.policy === 'noeviction') causes.push('no-eviction');
  const before: RedisMemoryState = {
    usedMemory: memory.usedMemory,
    maxmemory: memory.maxmemory,
    usage,
    dbsize: memory.dbsize,
    sessionKeys: sessions.count,
    maxmemoryPolicy: policy.policy,
    ...(memoryLimit ? { memoryLimit } : {}),
  };

  await run.change({
    stepId: 'delete-session-keys',
    title: `Delete keys matching ${sessionPattern}`,
    plan: async () => {
      const dry = await scan.deleteRedisKeys({ pattern: sessionPattern, maxKeys: input.maxKeys, dryRun: true });
      return {
        summary: `delete keys matching ${sessionPattern} (SCAN + UNLINK in batches), at most ${input.maxKeys}`,
        needed: (dry.wouldDelete ?? 0) > 0,
        observed: { matching: dry.matching, wouldDelete: dry.wouldDelete, capped: dry.capped },
      };
    },
    apply: async () => {
      const done = await scan.deleteRedisKeys({ pattern: sessionPattern, maxKeys: input.maxKeys });
      return `deleted ${done.deleted ?? 0} keys matching ${sessionPattern} in ${done.batches} UNLINK batches${done.capped ? ' (cap reached, keys may remain)' : ''}${done.resumedFrom ? ` (resumed after ${done.resumedFrom.deleted})` : ''}`;
    },
  });

  // Computed once from the diagnosis: a retried apply, a re-plan after approval or a replayed run
  // all aim at the same value, so the limit is raised once.
  const target = raisedMemoryLimit(limitBytes, input.memoryLimitFactor, input.maxMemoryLimit);
  const raiseWanted = underPressure && target !== undefined && memoryBytes(target)! > limitBytes!;
  await run.change({
    stepId: 'raise-memory-limit',
    title: `Raise the memory limit of ${namespace}/${deployment}`,
    allowedRoles: ['l2', 'manager', 'cto'],
    plan: async () => {
      if (!memoryLimit) return { summary: `${namespace}/${deployment} container ${container} has no memory limit to raise`, needed: false };
      if (!underPressure) return { summary: `memory limit stays ${memoryLimit} (usage ${percent(usage)} below ${percent(input.raiseWhenUsageAbove)})`, needed: false };
      if (!raiseWanted) return { summary: `memory limit stays ${memoryLimit} (already at the cap ${input.maxMemoryLimit})`, needed: false };
      const dry = await read.setContainerResources({ namespace, deployment, container, limits: { memory: target }, dryRun: true });
      return {
        summary: `memory limit of ${namespace}/${deployment} container ${container} ${memoryLimit} -> ${target} (x${input.memoryLimitFactor}, cap ${input.maxMemoryLimit})`,
        details: { from: memoryLimit, to: target },
        needed: dry.changed,
        observed: { current: dry.before.limits.memory },
      };
    },
    apply: async () => {
      const done = await change.setContainerResources({ namespace, deployment, container, limits: { memory: target } });
      return done.changed ? `${done.message}: limits.memory ${done.before.limits.memory ?? 'none'} -> ${done.after.limits.memory}` : `limits.memory already ${done.after.limits.memory}`;
    },
  });

  await run.change({
    stepId: 'set-maxmemory-policy',
    title: `Set maxmemory-policy ${input.maxmemoryPolicy}`,
    allowedRoles: ['l2', 'manager', 'cto'],
    plan: async () => {
      const dry = await read.setMaxmemoryPolicy({ policy: input.maxmemoryPolicy, dryRun: true });
      if (dry.before === input.maxmemoryPolicy) return { summary: `maxmemory-policy is already ${input.maxmemoryPolicy}`, needed: false };
      return { summary: `CONFIG SET maxmemory-policy ${dry.before} -> ${input.maxmemoryPolicy}`, details: { from: dry.before, to: input.maxmemoryPolicy }, needed: true };
    },
    apply: async () => {
      const done = await change.setMaxmemoryPolicy({ policy: input.maxmemoryPolicy });
      return done.changed ? `maxmemory-policy ${done.before} -> ${done.after}` : `maxmemory-policy already ${done.after}`;
    },
  });

  let after: RedisMemoryState | undefined;
  if (input.mode === 'execute') {
    after = await run.read(
      'verify',
      'Redis memory, session keys, policy and memory limit after the changes',
      async () => {
        const [m, p, s, snapshot] = await Promise.all([read.redisMemoryInfo(), read.getMaxmemoryPolicy(), scan.countRedisKeys({ pattern: sessionPattern }), read.snapshotNamespaceConfig({ namespace })]);
        const limit = containerMemoryLimit(snapshot, deployment, container);
        const lb = memoryBytes(limit);
        const state: RedisMemoryState = {
          usedMemory: m.usedMemory,
          maxmemory: m.maxmemory,
          usage: m.maxmemory > 0 ? m.usedMemory / m.maxmemory : lb ? m.usedMemory / lb : null,
          dbsize: m.dbsize,
          sessionKeys: s.count,
          maxmemoryPolicy: p.policy,
          ...(limit ? { memoryLimit: limit } : {}),
        };
        return state;
      },
      (s) => `used_memory ${mib(s.usedMemory)} (${percent(s.usage)}), ${s.dbsize} keys, ${s.sessionKeys} matching ${sessionPattern}, maxmemory-policy ${s.maxmemoryPolicy}, memory limit ${s.memoryLimit ?? 'none'}`,
    );
  }

  const applied = (stepId: string) => run.outcomeOf(stepId) === 'applied';
  const solution: string[] = [];
  solution.push(applied('delete-session-keys') ? `Keys matching ${sessionPattern} deleted (SCAN + UNLINK, at most ${input.maxKeys}).` : `Keys matching ${sessionPattern} not deleted (${run.outcomeOf('delete-session-keys')}).`);
  solution.push(applied('raise-memory-limit') ? `Memory limit of ${namespace}/${deployment} raised ${memoryLimit} -> ${target}.` : `Memory limit of ${namespace}/${deployment} not changed (${run.outcomeOf('raise-memory-limit')}).`);
  solution.push(applied('set-maxmemory-policy') ? `maxmemory-policy set to ${input.maxmemoryPolicy} (was ${policy.policy}).` : `maxmemory-policy not changed (${run.outcomeOf('set-maxmemory-policy')}; ${policy.policy}).`);
  const result = await run.finish(
    `${causes.length ? causes.join(', ') : 'no memory pressure found'}; used_memory ${mib(before.usedMemory)} (${percent(before.usage)}), ${before.sessionKeys} session keys${after ? `; after: ${mib(after.usedMemory)}, ${after.sessionKeys} session keys, ${after.maxmemoryPolicy}, limit ${after.memoryLimit ?? 'none'}` : ''}`,
    {
      impact: `Redis uses ${mib(memory.usedMemory)} (${percent(usage)} of ${memory.maxmemory ? `maxmemory ${mib(memory.maxmemory)}` : `the container limit ${memoryLimit ?? '(none)'}`}); with maxmemory-policy ${policy.policy} ${policy.policy === 'noeviction' ? 'writes fail with OOM errors once maxmemory is reached' : 'keys are evicted once maxmemory is reached'}, and the container is OOM-killed at its limit ${memoryLimit ?? '(none)'}.`,
      rootCause: `${causes.length ? `Found: ${causes.join(', ')}. ` : 'No memory pressure found. '}${sessions.count} of ${memory.dbsize} keys (${percent(sessionShare)}) match ${sessionPattern}; maxmemory-policy ${policy.policy}; fragmentation ratio ${memory.memFragmentationRatio}.`,
      solution: solution.join(' '),
      prevention: `Give session keys a TTL (EXPIRE on write), keep an allkeys-* eviction policy, size maxmemory below the container limit (${target ?? memoryLimit ?? 'limit'}), and alert at 85% of maxmemory.`,
    },
  );
  return { ...result, causes, before, ...(after ? { after } : {}), ...(raiseWanted && target ? { targetMemoryLimit: target } : {}) };
}
