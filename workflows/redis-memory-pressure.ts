import { patched } from '@temporalio/workflow';
import type { RedisMemoryPressureInput } from '../common/inputs/redis-memory-pressure';
import { memoryBytes } from '../common/quantity';
import { rolesFrom, type RunbookResultBase } from '../common/runbook';
import { RunbookRun } from './kernel/runbook-run';
import type { PromisedEffect } from './kernel/effect-check';
import { waitForRollout } from './rollout-wait';
import { diagnose, type Diagnosis, type Input, type RedisMemoryCause } from './redis-memory-pressure-diagnosis';
import { validateInput } from './validate-input';
import { deleteSessionKeysStep, setSessionTtlStep } from './redis-memory-pressure-keys';
import { read, wait, write } from './activity-proxies';
import { catalog } from '../common/catalog';
import {
  containerMemoryLimit,
  keysWithoutTtl,
  limitText,
  maxmemoryWhy,
  memoryState,
  mib,
  percent,
  pressureFindings,
  raisedMaxmemory,
  type MaxmemoryTarget,
  type RedisMemoryState,
} from './redis-memory-pressure-plans';

export { raisedMaxmemory, type MaxmemoryTarget, type RedisMemoryState } from './redis-memory-pressure-plans';
export type { RedisMemoryCause } from './redis-memory-pressure-diagnosis';

/**
 * Runs started before this patch neither wait for the rollout after raising the memory limit nor
 * have the raise-maxmemory step; their histories replay on the old path.
 */
export const raiseMaxmemoryPatch = 'redis-raise-maxmemory';

/**
 * Runs started before this patch neither count the session keys without a TTL (diagnosis and
 * verify) nor have the set-session-ttl step; their histories replay on the old path.
 */
export const sessionTtlPatch = 'redis-session-ttl';

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

/** What one run's steps share: the run, its input, whether it is on the patched path, and the diagnosis. */
export interface Pressure extends Diagnosis {
  run: RunbookRun<RedisMemoryPressureStep>;
  input: Input;
  withMaxmemory: boolean;
  /** On the patched path: keys without a TTL counted, the set-session-ttl step. */
  withTtl: boolean;
}

/** The run's step ids (`raise-maxmemory`, `session-keys-without-ttl` and `set-session-ttl` only on their patched paths). */
export type RedisMemoryPressureStep =
  | 'redis-memory'
  | 'maxmemory-policy'
  | 'session-keys'
  | 'session-keys-without-ttl'
  | 'memory-limit'
  | 'delete-session-keys'
  | 'set-session-ttl'
  | 'raise-memory-limit'
  | 'raise-maxmemory'
  | 'set-maxmemory-policy'
  | 'verify';

/**
 * 场景3 Redis 内存压力. What it does: catalog.redisMemoryPressure.
 * Targets are computed once from the diagnosis, so a retry or a re-plan never raises twice; the
 * key deletion is resumable so a retry continues rather than starts over.
 */
export async function redisMemoryPressure(raw: RedisMemoryPressureInput): Promise<RedisMemoryPressureResult> {
  const input = validateInput(catalog.redisMemoryPressure, raw);
  const { namespace, deployment, container } = input;
  // Every command the patch adds (the rollout wait, the raise-maxmemory step) is behind this.
  const withMaxmemory = patched(raiseMaxmemoryPatch);
  // Every command this patch adds (the TTL count in diagnosis and verify, the set-session-ttl step) is behind this.
  const withTtl = patched(sessionTtlPatch);
  const run = await RunbookRun.begin<RedisMemoryPressureStep>(catalog.redisMemoryPressure, input, [
    'redis-memory',
    'maxmemory-policy',
    'session-keys',
    ...(withTtl ? (['session-keys-without-ttl'] as const) : []),
    'memory-limit',
    'delete-session-keys',
    ...(withTtl ? (['set-session-ttl'] as const) : []),
    'raise-memory-limit',
    ...(withMaxmemory ? (['raise-maxmemory'] as const) : []),
    'set-maxmemory-policy',
    'verify',
  ]);
  await read.assertTargetsAllowed({
    namespaces: [namespace],
    redisKeyPatterns: [input.sessionPattern],
    names: [
      { name: deployment, what: 'deployment' },
      { name: container, what: 'container' },
    ],
  });

  const p: Pressure = { run, input, withMaxmemory, withTtl, ...(await diagnose(run, input, withTtl)) };
  await deleteSessionKeysStep(p);
  if (withTtl) await setSessionTtlStep(p);
  await raiseMemoryLimitStep(p);
  const maxmemoryTarget = withMaxmemory ? await raiseMaxmemoryStep(p) : undefined;
  await setPolicyStep(p);
  const after = input.mode === 'execute' ? await verifyAfter(p, maxmemoryTarget) : undefined;
  return reportPressure(p, maxmemoryTarget, after);
}

/** ⚠ raise the container's memory limit to the target; the new pod template restarts Redis. */
async function raiseMemoryLimitStep(p: Pressure): Promise<void> {
  const { run, input, withMaxmemory, memoryLimit, underPressure, usage, raiseWanted, target } = p;
  const { namespace, deployment, container } = input;
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
      // Redis is only ready for a CONFIG SET once the new pod is (it would be lost with the old pod).
      const rollout = await waitForRollout({ namespace, deployment }, input.rolloutTimeoutSeconds, `${text} (Redis restarting)`);
      return `${text}; Redis restarted: rollout complete in ${Math.round(rollout.waitedMs / 1000)}s (${rollout.readyReplicas}/${rollout.replicas} ready)`;
    },
  });
}

/**
 * ⚠ raise Redis' own maxmemory. Redis refuses writes ("OOM command not allowed when used memory >
 * 'maxmemory'") at its own maxmemory, whatever the container limit: with maxmemory set, that is
 * what has to go up. The target is computed once, from the diagnosis and whether the limit was
 * raised (or, in plan mode, would be): a retry, a re-plan or a replay aims at the same value.
 */
async function raiseMaxmemoryStep(p: Pressure): Promise<MaxmemoryTarget | undefined> {
  const { run, input, memory, limitBytes, target, underPressure, usage } = p;
  const limitRaised = ['applied', 'planned'].includes(run.outcomeOf('raise-memory-limit') ?? '');
  const mt = raisedMaxmemory({
    maxmemory: memory.maxmemory,
    ...(limitBytes ? { limitBytes } : {}),
    ...(limitRaised && target ? { newLimitBytes: memoryBytes(target)! } : {}),
    factor: input.memoryLimitFactor,
    share: input.maxmemoryShareOfLimit,
  });
  const share = `${Math.round(input.maxmemoryShareOfLimit * 100)}%`;
  await run.change({
    stepId: 'raise-maxmemory',
    title: 'Raise Redis maxmemory',
    allowedRoles: rolesFrom('l2'),
    plan: async () => {
      if (!mt) return { summary: 'Redis has no maxmemory (0): nothing to raise (only the container limit bounds it)', needed: false };
      if (!underPressure) return { summary: `maxmemory stays ${mib(memory.maxmemory)} (usage ${percent(usage)} of maxmemory below ${percent(input.raiseWhenUsageAbove)})`, needed: false };
      if (mt.bytes <= memory.maxmemory) {
        return { summary: `maxmemory stays ${mib(memory.maxmemory)}: already at or above ${share} of the container limit ${limitText(p, mt.limitBytes)} (${mib(mt.bytes)})`, needed: false };
      }
      const dry = await read.setMaxmemory({ bytes: mt.bytes, dryRun: true });
      if (dry.before >= mt.bytes) return { summary: `maxmemory is already ${mib(dry.before)} (target ${mib(mt.bytes)})`, needed: false, observed: { current: dry.before } };
      return {
        summary: `CONFIG SET maxmemory ${mib(dry.before)} -> ${mib(mt.bytes)} (used_memory ${percent(usage)} of maxmemory, Redis refuses writes at maxmemory; ${maxmemoryWhy(p, mt, share)}); lost on restart: set maxmemory in the Redis config too`,
        details: { from: dry.before, to: mt.bytes },
        needed: true,
      };
    },
    apply: async () => {
      const done = await write.setMaxmemory({ bytes: mt!.bytes });
      return done.changed ? `maxmemory ${mib(done.before)} -> ${mib(done.after)} (${done.after} bytes)` : `maxmemory already ${mib(done.after)}`;
    },
  });
  return mt;
}

/** ⚠ set maxmemory-policy (allkeys-lru by default) with CONFIG SET. */
async function setPolicyStep({ run, input }: Pressure): Promise<void> {
  const wanted = input.maxmemoryPolicy;
  await run.change({
    stepId: 'set-maxmemory-policy',
    title: `Set maxmemory-policy ${wanted}`,
    allowedRoles: rolesFrom('l2'),
    plan: async () => {
      const dry = await read.setMaxmemoryPolicy({ policy: wanted, dryRun: true });
      if (dry.before === wanted) return { summary: `maxmemory-policy is already ${wanted}`, needed: false };
      return { summary: `CONFIG SET maxmemory-policy ${dry.before} -> ${wanted}`, details: { from: dry.before, to: wanted }, needed: true };
    },
    apply: async () => {
      const done = await write.setMaxmemoryPolicy({ policy: wanted });
      return done.changed ? `maxmemory-policy ${done.before} -> ${done.after}` : `maxmemory-policy already ${done.after}`;
    },
  });
}

/**
 * Redis' memory, the session keys, the policy and the memory limit read again after the changes,
 * and what each applied step promised: fewer session keys, the new limit, maxmemory and policy.
 */
async function verifyAfter({ run, input, before, target, withTtl }: Pressure, maxmemoryTarget: MaxmemoryTarget | undefined): Promise<RedisMemoryState | undefined> {
  const { namespace, deployment, container, sessionPattern, maxmemoryPolicy } = input;
  const effects: Array<PromisedEffect<RedisMemoryState>> = [];
  if (run.applied('delete-session-keys'))
    effects.push({ promised: `fewer keys matching ${sessionPattern} than the ${before.sessionKeys} found`, holds: (s) => s.sessionKeys < before.sessionKeys, found: (s) => `${s.sessionKeys} match` });
  if (run.applied('set-session-ttl')) {
    const found = before.sessionKeysWithoutTtl ?? 0;
    effects.push({
      promised: `fewer keys without a TTL matching ${sessionPattern} than the ${found} found`,
      holds: (s) => (s.sessionKeysWithoutTtl ?? Infinity) < found,
      found: (s) => `${s.sessionKeysWithoutTtl ?? 'unknown'} have none`,
    });
  }
  if (run.applied('raise-memory-limit') && target)
    effects.push({
      promised: `memory limit ${target} on container ${container} of ${namespace}/${deployment}`,
      holds: (s) => memoryBytes(s.memoryLimit) === memoryBytes(target),
      found: (s) => `it is ${s.memoryLimit ?? 'unset'}`,
    });
  if (run.applied('raise-maxmemory') && maxmemoryTarget)
    effects.push({ promised: `maxmemory ${mib(maxmemoryTarget.bytes)}`, holds: (s) => s.maxmemory >= maxmemoryTarget.bytes, found: (s) => `CONFIG GET maxmemory returns ${mib(s.maxmemory)}` });
  if (run.applied('set-maxmemory-policy'))
    effects.push({ promised: `maxmemory-policy ${maxmemoryPolicy}`, holds: (s) => s.maxmemoryPolicy === maxmemoryPolicy, found: (s) => `it is ${s.maxmemoryPolicy}` });
  return run.verify('verify', 'Redis memory, session keys, policy and memory limit after the changes', {
    read: async () => {
      const [m, p, s, snapshot, t] = await Promise.all([
        read.redisMemoryInfo(),
        read.getMaxmemoryPolicy(),
        wait.countRedisKeys({ pattern: sessionPattern }),
        read.snapshotNamespaceConfig({ namespace }),
        // Recounted among the allowlisted pattern's keys as the diagnosis counted them (a sample of ttlSampleSize when there are more).
        withTtl ? wait.countRedisKeysWithoutTtl({ pattern: sessionPattern, sampleSize: input.ttlSampleSize }) : undefined,
      ]);
      return memoryState(m, s.count, p.policy, containerMemoryLimit(snapshot, deployment, container), t && keysWithoutTtl(t, s.count).count);
    },
    describe: (s) =>
      `used_memory ${mib(s.usedMemory)} (${percent(s.usage)}), maxmemory ${s.maxmemory ? mib(s.maxmemory) : 'none'}, ${s.dbsize} keys, ${s.sessionKeys} matching ${sessionPattern}${
        s.sessionKeysWithoutTtl !== undefined ? ` (${s.sessionKeysWithoutTtl} without a TTL)` : ''
      }, maxmemory-policy ${s.maxmemoryPolicy}, memory limit ${s.memoryLimit ?? 'none'}`,
    effects,
    before: 'same read',
  });
}

/** The incident report and the result. */
async function reportPressure(p: Pressure, maxmemoryTarget: MaxmemoryTarget | undefined, after: RedisMemoryState | undefined): Promise<RedisMemoryPressureResult> {
  const { run, memory, causes, underPressure, before, target, raiseWanted } = p;
  const result = await run.finish(
    `${causes.length ? causes.join(', ') : 'no memory pressure found'}; used_memory ${mib(before.usedMemory)} (${percent(before.usage)}), ${before.sessionKeys} session keys${before.sessionKeysWithoutTtl !== undefined ? ` (${before.sessionKeysWithoutTtl} without a TTL)` : ''}${after ? `; after: ${mib(after.usedMemory)}, ${after.sessionKeys} session keys, ${after.maxmemoryPolicy}, limit ${after.memoryLimit ?? 'none'}` : ''}`,
    pressureFindings(p, (stepId) => run.outcomeOf(stepId), maxmemoryTarget),
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
