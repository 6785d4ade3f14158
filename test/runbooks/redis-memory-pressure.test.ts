import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { Runtime } from '@temporalio/worker';
import { AppsV1Api, PatchUtils, type V1ResourceRequirements } from '@kubernetes/client-node';
import Redis from 'ioredis';
import { createActivities } from '../../activities';
import type { SetResourcesInput } from '../../activities/kubernetes-rollouts';
import type { ExpireRedisKeysInput } from '../../activities/redis';
import { createRunbookClient } from '../../client';
import { waitUntil } from '../../scripts/testbed/processes';
import { raisedMaxmemory, type RedisMemoryPressureResult } from '../../workflows/redis-memory-pressure';
import { keysWithoutTtl } from '../../workflows/redis-memory-pressure-plans';
import { recordHistory } from '../helpers/histories';
import { adminKubeConfig, waitForRollout } from '../helpers/kube-cluster';
import { testbedConfig, testbedEnv } from '../helpers/testbed';
import { withRunbooks, withWorker } from '../helpers/worker';
import { buildDependencies } from '../../workers/dependencies';
import { approveEach, expectIncidentReport, pendingOf, readBucketText, scheduledActivityTypes, terminateRuns } from '../helpers/runbook-runs';

const namespace = 'short-drama-prod';
const steps = ['delete-session-keys', 'raise-memory-limit', 'raise-maxmemory', 'set-maxmemory-policy'];
/** Every step asking a decision when nothing is deleted: with the delete rejected, the keys without a TTL are offered one. */
const stepsWithTtl = ['delete-session-keys', 'set-session-ttl', 'raise-memory-limit', 'raise-maxmemory', 'set-maxmemory-policy'];
const ttlSummary = (ttl: number, maxKeys: number) =>
  `set TTL ${ttl}s (EXPIRE NX) on the keys without a TTL matching session:*, at most ${maxKeys} (SCAN + pipelined TTL, in batches); keys with a TTL keep theirs`;
const Mi = 2 ** 20;
/** The maxmemory every test starts from unless it sets its own (the test bed's `--maxmemory 256mb`). */
const startMaxmemory = 256 * Mi;
/** 256Mi is half the seed limit 512Mi; the limit raised to 768Mi keeps that share: 384Mi. */
const raisedFromStart = 384 * Mi;
/** The raise-memory-limit step's applied detail since the patch: the rollout (Redis restarting) is waited for. */
const raisedLimitDetail = (text: string) => new RegExp(`${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}; Redis restarted: rollout complete in \\d+s \\(\\d+/\\d+ ready\\)$`);
const restartWarning = '; changes the pod template, so Redis RESTARTS: CONFIG SET values are lost, and so is its data without persistence (RDB/AOF on a volume)';

/**
 * 场景3 against the real Redis (db 0 of the test bed, the runbook's configured REDIS_URL) and the
 * real Kubernetes API. Other test files keep out of `session:*` in db 0; every key made here carries
 * a unique run prefix and is removed afterwards, and the redis Deployment's seed resources and the
 * server's maxmemory-policy and maxmemory are put back after every test.
 */
describe('redisMemoryPressure', () => {
  const env = testbedEnv();
  const config = testbedConfig({
    RUNBOOK_APPROVERS: JSON.stringify([
      { id: 'bob', roles: ['l2'] },
      { id: 'carol', roles: ['manager'] },
    ]),
  });
  const kc = adminKubeConfig();
  const apps = kc.makeApiClient(AppsV1Api);
  let redis: Redis;
  let originalPolicy: string;
  let originalMaxmemory: string;
  let seedResources: V1ResourceRequirements;
  let seedContainerIndex: number;
  /** Prefixes of every key a test made: cleaned up after each test. */
  const made: string[] = [];

  /** The redis container once the Deployment controller has seen the latest template (it assigns the revision). */
  async function redisContainer() {
    let body = (await apps.readNamespacedDeployment('redis', namespace)).body;
    await waitUntil('redis Deployment observed', async () => {
      body = (await apps.readNamespacedDeployment('redis', namespace)).body;
      return (body.status?.observedGeneration ?? 0) >= (body.metadata?.generation ?? 0);
    });
    const containers = body.spec!.template.spec!.containers;
    const index = containers.findIndex((c) => c.name === 'redis');
    return { index, resources: containers[index]!.resources ?? {}, revision: Number(body.metadata?.annotations?.['deployment.kubernetes.io/revision']) };
  }
  const memoryLimit = async () => (await redisContainer()).resources.limits?.memory;

  async function countKeys(pattern: string): Promise<number> {
    let cursor = '0';
    let n = 0;
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 5000);
      cursor = next;
      n += keys.length;
    } while (cursor !== '0');
    return n;
  }

  /** Keys matching without a TTL, from the test side (SCAN + TTL of each key). */
  async function ttlsOf(pattern: string): Promise<number[]> {
    const ttls: number[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 5000);
      cursor = next;
      const pipeline = redis.pipeline();
      for (const key of keys) pipeline.ttl(key);
      for (const [, ttl] of (await pipeline.exec()) ?? []) ttls.push(ttl as number);
    } while (cursor !== '0');
    return ttls;
  }
  const countWithoutTtl = async (pattern: string) => (await ttlsOf(pattern)).filter((ttl) => ttl === -1).length;

  async function unlinkAll(pattern: string): Promise<void> {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 5000);
      cursor = next;
      if (keys.length) await redis.unlink(...keys);
    } while (cursor !== '0');
  }

  /** Session keys plus other keys (one family looks almost like sessions), each under a unique prefix. */
  async function fill(sessionKeys: number, otherKeys: number): Promise<{ sessions: string; others: string[] }> {
    const id = randomUUID().slice(0, 8);
    const sessions = `session:rmp-${id}:`;
    const others = [`rmp-cache-${id}:`, `sessions-rmp-${id}:`, `user:rmp-${id}:session:`];
    made.push(sessions, ...others);
    const pipeline = redis.pipeline();
    for (let i = 0; i < sessionKeys; i++) pipeline.set(`${sessions}${i}`, `{"user":${i},"data":"${'x'.repeat(200)}"}`);
    for (const prefix of others) for (let i = 0; i < otherKeys; i++) pipeline.set(`${prefix}${i}`, 'keep');
    await pipeline.exec();
    return { sessions, others };
  }

  const maxmemoryNow = async () => Number(((await redis.config('GET', 'maxmemory')) as string[])[1]);
  const usedMemory = async () => Number(/^used_memory:(\d+)/m.exec(await redis.info('memory'))![1]);

  async function othersIntact(others: string[], each: number): Promise<void> {
    for (const prefix of others) expect(await countKeys(`${prefix}*`)).toBe(each);
  }

  /**
   * Redis runs in its pod on the real node without persistence: the raised limit's new pod template
   * restarted it, so every other key went with it, as the plan warned (restartWarning).
   */
  async function othersLostInTheRestart(others: string[]): Promise<void> {
    for (const prefix of others) expect(await countKeys(`${prefix}*`)).toBe(0);
  }

  /** Runs share one workflow id per target (dedupe): a run left behind by a failed test must not be joined by the next. */
  async function terminateLeftover(): Promise<void> {
    await terminateRuns(config.temporal, [`redisMemoryPressure/${namespace}/redis`, `lock/${namespace}/redis`]);
  }

  /** The seeded resources back, and the restarted Redis serving (a test's CONFIG SET must reach the new server, not the old one). */
  async function restoreSeed(): Promise<void> {
    const now = await redisContainer();
    if (JSON.stringify(now.resources) === JSON.stringify(seedResources)) return;
    await apps.patchNamespacedDeployment(
      'redis',
      namespace,
      [{ op: 'replace', path: `/spec/template/spec/containers/${seedContainerIndex}/resources`, value: seedResources }],
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      { headers: { 'Content-Type': PatchUtils.PATCH_FORMAT_JSON_PATCH } },
    );
    await waitForRollout(kc, namespace, 'redis');
  }

  beforeAll(async () => {
    redis = new Redis(env.TESTBED_REDIS_ADMIN_URL!);
    originalPolicy = ((await redis.config('GET', 'maxmemory-policy')) as string[])[1]!;
    originalMaxmemory = ((await redis.config('GET', 'maxmemory')) as string[])[1]!;
    const seed = await redisContainer();
    seedResources = seed.resources;
    seedContainerIndex = seed.index;
    expect(seedResources.limits?.memory).toBe('512Mi'); // the seed; 1.5x is 768Mi
    await terminateLeftover();
  });

  beforeEach(async () => {
    await redis.config('SET', 'maxmemory-policy', 'noeviction'); // the state of an incident
    await redis.config('SET', 'maxmemory', String(startMaxmemory));
    expect(await countKeys('session:*')).toBe(0); // db 0's session keys are this file's alone
  });

  afterEach(async () => {
    await terminateLeftover();
    for (const prefix of made.splice(0)) await unlinkAll(`${prefix}*`);
    await redis.config('SET', 'maxmemory-policy', originalPolicy);
    await redis.config('SET', 'maxmemory', originalMaxmemory);
    await restoreSeed();
  });

  afterAll(async () => {
    await redis.config('SET', 'maxmemory', originalMaxmemory);
    await restoreSeed();
    redis.disconnect();
  });

  test('plan: names the exact changes and changes nothing', async () => {
    const { sessions, others } = await fill(3000, 200);
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('redisMemoryPressure', { raiseWhenUsageAbove: 0 }, { startedBy: 'erin' });
      return runbooks.waitForResult<RedisMemoryPressureResult>(workflowId);
    });
    expect(result.outcome).toBe('planned');
    expect(result.plan.map((p) => [p.stepId, p.change.summary])).toEqual([
      ['delete-session-keys', 'delete keys matching session:* (SCAN + UNLINK in batches), at most 100000'],
      ['set-session-ttl', ttlSummary(3600, 100000)],
      ['raise-memory-limit', `memory limit of short-drama-prod/redis container redis 512Mi -> 768Mi (x1.5, cap 4Gi)${restartWarning}`],
      [
        'raise-maxmemory',
        expect.stringMatching(
          /^CONFIG SET maxmemory 256\.0MiB -> 384\.0MiB \(used_memory [\d.]+% of maxmemory, Redis refuses writes at maxmemory; keeps maxmemory at 50% of the container limit, raised 512Mi -> 768Mi\); lost on restart: set maxmemory in the Redis config too$/,
        ),
      ],
      ['set-maxmemory-policy', 'CONFIG SET maxmemory-policy noeviction -> allkeys-lru'],
    ]);
    expect(result.plan.find((p) => p.stepId === 'raise-maxmemory')!.change.details).toEqual({ from: startMaxmemory, to: raisedFromStart });
    expect(result.targetMaxmemory).toBe(raisedFromStart);
    expect(result.plan[0]!.change.observed).toEqual({ matching: 3000, wouldDelete: 3000, capped: false });
    expect(result.plan[1]!.change).toMatchObject({ details: { ttlSeconds: 3600, maxKeys: 100000 }, observed: { withoutTtl: 3000, wouldExpire: 3000, capped: false } });
    expect(result.timeline.find((e) => e.stepId === 'session-keys-without-ttl')).toMatchObject({ event: 'read', detail: '3000 of 3000 keys without a TTL' });
    expect(result.causes).toEqual(['memory-pressure', 'session-keys', 'no-eviction']);
    expect(result.before).toMatchObject({ sessionKeys: 3000, sessionKeysWithoutTtl: 3000, maxmemoryPolicy: 'noeviction', memoryLimit: '512Mi' });
    expect(result.before.dbsize).toBeGreaterThanOrEqual(3600);
    expect(result.targetMemoryLimit).toBe('768Mi');
    expect(result.after).toBeUndefined();
    // Nothing changed.
    expect(await countKeys(`${sessions}*`)).toBe(3000);
    expect(await countWithoutTtl(`${sessions}*`)).toBe(3000);
    await othersIntact(others, 200);
    expect(await memoryLimit()).toBe('512Mi');
    expect(await maxmemoryNow()).toBe(startMaxmemory);
    expect(((await redis.config('GET', 'maxmemory-policy')) as string[])[1]).toBe('noeviction');
    expect(result.report?.markdownKey).toMatch(/^runbooks\/reports\/redisMemoryPressure\//);
  });

  test('execute + approve: the session keys go, the memory limit is raised once (x1.5) and rolled out (restarting Redis, whose other keys go with it, as planned), maxmemory keeps its share, allkeys-lru on the restarted server, report written', async () => {
    const { revision: revisionBefore } = await redisContainer();
    const { sessions, others } = await fill(4000, 300);
    const result = await withRunbooks(config, async ({ runbooks, client }) => {
      const { workflowId } = await runbooks.startRunbook('redisMemoryPressure', { mode: 'execute', raiseWhenUsageAbove: 0, severity: 'P1' }, { startedBy: 'erin' });
      await approveEach(runbooks, workflowId, steps);
      const finished = await runbooks.waitForResult<RedisMemoryPressureResult>(workflowId);
      // redis-memory-pressure-approved.json is the history from before the raise-maxmemory patch,
      // kept so that runs started on the old code are proven to replay: never overwrite it.
      await recordHistory(client.workflow.getHandle(workflowId), 'approved-maxmemory');
      return finished;
    });
    expect(result.outcome).toBe('completed');
    expect(result.timeline.filter((e) => e.event === 'applied').map((e) => [e.stepId, e.detail])).toEqual([
      ['delete-session-keys', expect.stringMatching(/^deleted 4000 keys matching session:\* in \d+ UNLINK batches$/)],
      ['raise-memory-limit', expect.stringMatching(raisedLimitDetail('limits.memory 512Mi -> 768Mi'))],
      ['raise-maxmemory', `maxmemory 256.0MiB -> 384.0MiB (${raisedFromStart} bytes)`],
      ['set-maxmemory-policy', 'maxmemory-policy noeviction -> allkeys-lru'],
    ]);
    // The real systems.
    expect(await countKeys('session:*')).toBe(0);
    expect(await countKeys(`${sessions}*`)).toBe(0);
    await othersLostInTheRestart(others);
    const after = await redisContainer();
    expect(after.resources.limits?.memory).toBe('768Mi');
    expect(after.resources.limits?.cpu).toBe(seedResources.limits?.cpu);
    expect(after.resources.requests).toEqual(seedResources.requests);
    expect(after.revision).toBe(revisionBefore + 1); // one template change
    expect(((await redis.config('GET', 'maxmemory-policy')) as string[])[1]).toBe('allkeys-lru');
    expect(await maxmemoryNow()).toBe(raisedFromStart);
    expect(result.after).toMatchObject({ sessionKeys: 0, maxmemoryPolicy: 'allkeys-lru', memoryLimit: '768Mi', maxmemory: raisedFromStart });
    expect(result.timeline.find((e) => e.event === 'verified')).toMatchObject({
      stepId: 'verify',
      detail: `verified: fewer keys matching session:* than the 4000 found (0 match); memory limit 768Mi on container redis of ${namespace}/redis (it is 768Mi); maxmemory 384.0MiB (CONFIG GET maxmemory returns 384.0MiB); maxmemory-policy allkeys-lru (it is allkeys-lru)`,
    });
    // The raised limit was rolled out (the step waited for it) before maxmemory was set.
    const rollout = (await apps.readNamespacedDeployment('redis', namespace)).body.status!;
    expect(rollout.updatedReplicas).toBe(rollout.replicas);
    const order = result.timeline.filter((e) => e.event === 'applied').map((e) => e.stepId);
    expect(order.indexOf('raise-memory-limit')).toBeLessThan(order.indexOf('raise-maxmemory'));

    const markdown = await readBucketText(result.report!.markdownKey);
    expectIncidentReport(markdown);
    expect(markdown).toContain('4000 of');
    expect(markdown).toContain('CONFIG SET does not survive a restart');
    expect(markdown).toContain('redis.conf or the container args');
  });

  test('execute + reject: nothing changes and the run says what was not done', async () => {
    const { sessions, others } = await fill(1500, 100);
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('redisMemoryPressure', { mode: 'execute', raiseWhenUsageAbove: 0 }, { startedBy: 'erin' });
      for (const step of stepsWithTtl) {
        const pending = await pendingOf(runbooks, workflowId, step);
        await runbooks.reject(workflowId, { stepId: step, planHash: pending.planHash, approver: 'carol', reason: 'not now' });
      }
      return runbooks.waitForResult<RedisMemoryPressureResult>(workflowId);
    });
    expect(result.outcome).toBe('rejected');
    expect(result.timeline.filter((e) => e.event === 'skipped').map((e) => [e.stepId, e.detail])).toEqual(stepsWithTtl.map((s) => [s, 'rejected']));
    expect(await countWithoutTtl(`${sessions}*`)).toBe(1500);
    expect(result.timeline.filter((e) => e.event === 'applied')).toEqual([]);
    expect(await countKeys(`${sessions}*`)).toBe(1500);
    await othersIntact(others, 100);
    expect(await memoryLimit()).toBe('512Mi');
    expect(await maxmemoryNow()).toBe(startMaxmemory);
    expect(((await redis.config('GET', 'maxmemory-policy')) as string[])[1]).toBe('noeviction');
  });

  test('a worker lost between two steps: another worker resumes, and the limit and maxmemory are raised exactly once', async () => {
    const { revision: revisionBefore } = await redisContainer();
    const { others } = await fill(2000, 100);
    let workflowId = '';
    // First worker: start, approve the key deletion and the limit raise, then the worker goes away before the policy step.
    await withRunbooks(config, async ({ runbooks }) => {
      ({ workflowId } = await runbooks.startRunbook('redisMemoryPressure', { mode: 'execute', raiseWhenUsageAbove: 0 }, { startedBy: 'erin' }));
      await approveEach(runbooks, workflowId, ['delete-session-keys', 'raise-memory-limit', 'raise-maxmemory']);
      await pendingOf(runbooks, workflowId, 'set-maxmemory-policy');
    });
    expect(await memoryLimit()).toBe('768Mi');
    expect(await maxmemoryNow()).toBe(raisedFromStart);
    // Second worker (a new process would do the same): the run goes on from its history.
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const pending = await pendingOf(runbooks, workflowId, 'set-maxmemory-policy');
      await runbooks.approve(workflowId, { stepId: 'set-maxmemory-policy', planHash: pending.planHash, approver: 'bob', reason: 'set the policy' });
      return runbooks.waitForResult<RedisMemoryPressureResult>(workflowId);
    });
    expect(result.outcome).toBe('completed');
    expect(result.timeline.filter((e) => e.event === 'applied').map((e) => e.stepId)).toEqual(steps);
    expect(result.targetMemoryLimit).toBe('768Mi');
    expect(result.targetMaxmemory).toBe(raisedFromStart);
    expect(await maxmemoryNow()).toBe(raisedFromStart); // not 576Mi
    const after = await redisContainer();
    expect(after.resources.limits?.memory).toBe('768Mi'); // not 1152Mi
    expect(after.revision).toBe(revisionBefore + 1);
    expect(await countKeys('session:*')).toBe(0);
    await othersLostInTheRestart(others);
    expect(((await redis.config('GET', 'maxmemory-policy')) as string[])[1]).toBe('allkeys-lru');
  });

  test('an activity failing after its change: the retry finds the limit raised and does not raise it again', async () => {
    const { revision: revisionBefore } = await redisContainer();
    await fill(1000, 50);
    // The real activity, whose first applying attempt loses its answer after the patch went through.
    const built = buildDependencies(config, Runtime.instance().logger);
    const real = createActivities(built.deps);
    let failed = 0;
    const setContainerResources = async (input: SetResourcesInput) => {
      const done = await real.setContainerResources(input);
      if (!input.dryRun && failed++ === 0) throw ApplicationFailure.retryable('connection reset after the patch', 'Transient');
      return done;
    };
    try {
      const result = await withWorker(
        config,
        async ({ client, taskQueue }) => {
          const runbooks = createRunbookClient({ client, taskQueue });
          const { workflowId } = await runbooks.startRunbook('redisMemoryPressure', { mode: 'execute', raiseWhenUsageAbove: 0 }, { startedBy: 'erin' });
          await approveEach(runbooks, workflowId, steps);
          return runbooks.waitForResult<RedisMemoryPressureResult>(workflowId);
        },
        { activities: { setContainerResources } },
      );
      expect(failed).toBe(2); // the failed attempt and its retry
      expect(result.outcome).toBe('completed');
      expect(result.timeline.filter((e) => e.event === 'applied').map((e) => [e.stepId, e.detail])).toEqual([
        ['delete-session-keys', expect.stringMatching(/^deleted 1000 keys/)],
        ['raise-memory-limit', expect.stringMatching(raisedLimitDetail('limits.memory already 768Mi'))],
        ['raise-maxmemory', `maxmemory 256.0MiB -> 384.0MiB (${raisedFromStart} bytes)`],
        ['set-maxmemory-policy', 'maxmemory-policy noeviction -> allkeys-lru'],
      ]);
      const after = await redisContainer();
      expect(after.resources.limits?.memory).toBe('768Mi');
      expect(after.revision).toBe(revisionBefore + 1);
    } finally {
      await built.close();
    }
  });

  test('bad input: a clear non-retryable error before anything is touched', async () => {
    const { sessions, others } = await fill(500, 50);
    await withRunbooks(config, async ({ runbooks, client, taskQueue }) => {
      await expect(runbooks.startRunbook('redisMemoryPressure', { memoryLimitFactor: 0.5 }, { startedBy: 'erin' })).rejects.toThrow(
        'invalid input for redisMemoryPressure: memoryLimitFactor: must be above 1 (the limit is raised, never lowered)',
      );
      await expect(runbooks.startRunbook('redisMemoryPressure', { maxmemoryShareOfLimit: 1 }, { startedBy: 'erin' })).rejects.toThrow(
        'invalid input for redisMemoryPressure: maxmemoryShareOfLimit: at most 0.95 (Redis needs headroom above maxmemory for fragmentation, forks and buffers)',
      );
      await expect(runbooks.startRunbook('redisMemoryPressure', { maxmemoryShareOfLimit: 0 }, { startedBy: 'erin' })).rejects.toThrow(
        'invalid input for redisMemoryPressure: maxmemoryShareOfLimit: a fraction of the container memory limit, above 0',
      );
      // Past the client's check, the workflow refuses the same input itself, before any activity.
      const nonsense = await client.workflow.start('redisMemoryPressure', {
        taskQueue,
        workflowId: `rmp-bad-${randomUUID()}`,
        args: [{ memoryLimitFactor: -3, maxMemoryLimit: 'lots', mode: 'execute' }],
      });
      const invalid = await nonsense.result().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(invalid).toBeInstanceOf(WorkflowFailedError);
      const failure = (invalid as WorkflowFailedError).cause as Error & { type?: string; nonRetryable?: boolean };
      expect(failure.message).toBe(
        'invalid input for redisMemoryPressure: memoryLimitFactor: must be above 1 (the limit is raised, never lowered); maxMemoryLimit: expected a memory quantity of at least 1Mi, such as 512Mi or 4Gi',
      );
      expect([failure.type, failure.nonRetryable]).toEqual(['InvalidInput', true]);
      const scheduled = scheduledActivityTypes;
      expect(await scheduled(nonsense)).toEqual([]);

      const handle = await client.workflow.start('redisMemoryPressure', {
        taskQueue,
        workflowId: `rmp-bad-${randomUUID()}`,
        args: [{ namespace: 'kube-system', mode: 'execute', raiseWhenUsageAbove: 0 }],
      });
      const error = await handle.result().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(WorkflowFailedError);
      expect(String(((error as WorkflowFailedError).cause?.cause as Error | undefined)?.message)).toBe('namespace kube-system is never touched by runbooks');
      expect(await scheduled(handle)).toEqual(['loadApprovalPolicy', 'assertTargetsAllowed']);

      // A pattern outside the allowlist is refused before Redis is read at all (not counted first).
      const foreign = await client.workflow.start('redisMemoryPressure', {
        taskQueue,
        workflowId: `rmp-bad-${randomUUID()}`,
        args: [{ sessionPattern: 'user:*', mode: 'execute', raiseWhenUsageAbove: 0 }],
      });
      const refusedPattern = await foreign.result().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(String(((refusedPattern as WorkflowFailedError).cause?.cause as Error | undefined)?.message)).toMatch(/^Redis key pattern "user:\*" is not in the allowlist/);
      expect(await scheduled(foreign)).toEqual(['loadApprovalPolicy', 'assertTargetsAllowed']);
    });
    expect(await countKeys(`${sessions}*`)).toBe(500);
    await othersIntact(others, 50);
    expect(await memoryLimit()).toBe('512Mi');
    expect(await maxmemoryNow()).toBe(startMaxmemory);
    expect(((await redis.config('GET', 'maxmemory-policy')) as string[])[1]).toBe('noeviction');
  });

  describe('设置过期时间: a TTL on the session keys without one', () => {
    /** Session keys the app gave a TTL (they match session:* too, under the run's prefix). */
    async function fillWithTtl(prefix: string, count: number, seconds: number): Promise<void> {
      const pipeline = redis.pipeline();
      for (let i = 0; i < count; i++) pipeline.set(`${prefix}${i}`, 'v', 'EX', seconds);
      await pipeline.exec();
    }

    /** Rejects the delete (users would be logged out), then approves the TTL and the policy. */
    async function rejectDeleteApproveTtl(runbooks: Parameters<typeof approveEach>[0], workflowId: string): Promise<NonNullable<Awaited<ReturnType<typeof pendingOf>>>> {
      const del = await pendingOf(runbooks, workflowId, 'delete-session-keys');
      await runbooks.reject(workflowId, { stepId: 'delete-session-keys', planHash: del.planHash, approver: 'carol', reason: 'users would be logged out' });
      const ttl = await pendingOf(runbooks, workflowId, 'set-session-ttl');
      await approveEach(runbooks, workflowId, ['set-session-ttl', 'set-maxmemory-policy']);
      return ttl;
    }

    test('execute, the delete rejected, the TTL approved: keys without a TTL get the configured TTL up to the cap, keys with a TTL keep theirs, the verify recounts, the report says so', async () => {
      const { sessions, others } = await fill(1500, 100);
      await fillWithTtl(`${sessions}app-ttl:`, 200, 100_000);
      let pendingTtl: Awaited<ReturnType<typeof pendingOf>> | undefined;
      const result = await withRunbooks(config, async ({ runbooks, client }) => {
        const { workflowId } = await runbooks.startRunbook('redisMemoryPressure', { mode: 'execute', maxKeys: 1000, sessionTtlSeconds: 1800 }, { startedBy: 'erin' });
        pendingTtl = await rejectDeleteApproveTtl(runbooks, workflowId);
        const finished = await runbooks.waitForResult<RedisMemoryPressureResult>(workflowId);
        await recordHistory(client.workflow.getHandle(workflowId), 'approved-session-ttl');
        return finished;
      });
      expect(pendingTtl!.change).toMatchObject({ summary: ttlSummary(1800, 1000), details: { ttlSeconds: 1800, maxKeys: 1000 }, observed: { wouldExpire: 1000, capped: true } });
      expect(result.outcome).toBe('partially-applied');
      expect(result.before).toMatchObject({ sessionKeys: 1700, sessionKeysWithoutTtl: 1500 });
      expect(result.timeline.filter((e) => e.event === 'applied').map((e) => [e.stepId, e.detail])).toEqual([
        ['set-session-ttl', expect.stringMatching(/^set TTL 1800s on 1000 keys matching session:\* in \d+ EXPIRE batches \(cap reached, keys without a TTL may remain\)$/)],
        ['set-maxmemory-policy', 'maxmemory-policy noeviction -> allkeys-lru'],
      ]);
      // The real Redis: 1000 got 1800 s, 500 are left without (the cap), the app's 200 keep theirs; nothing deleted.
      const ttls = await ttlsOf(`${sessions}*`);
      expect(ttls).toHaveLength(1700);
      expect(ttls.filter((t) => t === -1)).toHaveLength(500);
      expect(ttls.filter((t) => t > 1700 && t <= 1800)).toHaveLength(1000);
      expect(ttls.filter((t) => t > 99_000)).toHaveLength(200);
      for (const prefix of others) expect(await countWithoutTtl(`${prefix}*`)).toBe(100);
      expect(result.after).toMatchObject({ sessionKeys: 1700, sessionKeysWithoutTtl: 500 });
      expect(result.timeline.find((e) => e.event === 'verified')).toMatchObject({
        stepId: 'verify',
        detail: 'verified: fewer keys without a TTL matching session:* than the 1500 found (500 have none); maxmemory-policy allkeys-lru (it is allkeys-lru)',
      });
      const markdown = await readBucketText(result.report!.markdownKey);
      expectIncidentReport(markdown);
      expect(markdown).toContain('1500 of them without a TTL');
      expect(markdown).toContain('TTL 1800s set on keys matching session:* that had none (EXPIRE NX, at most 1000).');
    });

    test('the TTL activity failing after its EXPIREs: the retry resumes from its progress, counts exactly, keeps the cap and sets no TTL twice', async () => {
      const { sessions } = await fill(1000, 20);
      const built = buildDependencies(config, Runtime.instance().logger);
      const real = createActivities(built.deps);
      let failed = 0;
      let expiresAfterFirst: number[] = [];
      const expiryTimes = async () => {
        const keys: string[] = [];
        let cursor = '0';
        do {
          const [next, page] = await redis.scan(cursor, 'MATCH', `${sessions}*`, 'COUNT', 5000);
          cursor = next;
          keys.push(...page);
        } while (cursor !== '0');
        keys.sort();
        const pipeline = redis.pipeline();
        for (const key of keys) pipeline.call('EXPIRETIME', key);
        return ((await pipeline.exec()) ?? []).map(([, t]) => t as number);
      };
      // The real activity, whose first applying attempt loses its answer after its EXPIREs went through.
      const expireRedisKeys = async (input: ExpireRedisKeysInput) => {
        const done = await real.expireRedisKeys(input);
        if (!input.dryRun && failed++ === 0) {
          expiresAfterFirst = await expiryTimes();
          throw ApplicationFailure.retryable('connection reset after the EXPIREs', 'Transient');
        }
        return done;
      };
      try {
        const result = await withWorker(
          config,
          async ({ client, taskQueue }) => {
            const runbooks = createRunbookClient({ client, taskQueue });
            const { workflowId } = await runbooks.startRunbook('redisMemoryPressure', { mode: 'execute', maxKeys: 600 }, { startedBy: 'erin' });
            await rejectDeleteApproveTtl(runbooks, workflowId);
            return runbooks.waitForResult<RedisMemoryPressureResult>(workflowId);
          },
          { activities: { expireRedisKeys } },
        );
        expect(failed).toBe(2); // the failed attempt and its retry
        expect(result.outcome).toBe('partially-applied');
        expect(result.timeline.find((e) => e.event === 'applied' && e.stepId === 'set-session-ttl')?.detail).toMatch(
          /^set TTL 3600s on 600 keys matching session:\* in \d+ EXPIRE batches \(cap reached, keys without a TTL may remain\) \(resumed after 600\)$/,
        );
        // The cap held over both attempts, and the retry re-set no expiry.
        expect(await countWithoutTtl(`${sessions}*`)).toBe(400);
        expect(await expiryTimes()).toEqual(expiresAfterFirst);
        expect(result.after).toMatchObject({ sessionKeys: 1000, sessionKeysWithoutTtl: 400 });
      } finally {
        await built.close();
      }
    });

    test('many keys: the diagnosis checks a sample (ttlSampleSize) and estimates the keys without a TTL; the plan counts them until past the cap; nothing changes', async () => {
      // 20000 session keys, 3 in 4 without a TTL: a SCAN page (COUNT 5000) is past the sample of 100.
      const id = randomUUID().slice(0, 8);
      const sessions = `session:rmp-${id}:`;
      made.push(sessions);
      const pipeline = redis.pipeline();
      for (let i = 0; i < 20_000; i++) {
        if (i % 4 === 0) pipeline.set(`${sessions}${i}`, 'v', 'EX', 3600);
        else pipeline.set(`${sessions}${i}`, 'v');
      }
      await pipeline.exec();
      const result = await withRunbooks(config, async ({ runbooks }) => {
        const { workflowId } = await runbooks.startRunbook('redisMemoryPressure', { ttlSampleSize: 100, maxKeys: 5000 }, { startedBy: 'erin' });
        return runbooks.waitForResult<RedisMemoryPressureResult>(workflowId);
      });
      expect(result.outcome).toBe('planned');
      const read = result.timeline.find((e) => e.stepId === 'session-keys-without-ttl')!;
      const [, estimate, checked] = /^about (\d+) keys without a TTL \(estimated from (\d+) keys checked\)$/.exec(read.detail ?? '') ?? [];
      expect(Number(checked)).toBeGreaterThanOrEqual(100);
      expect(Number(checked)).toBeLessThan(20_000);
      expect(Number(estimate)).toBeGreaterThan(13_000); // 15000 without a TTL
      expect(Number(estimate)).toBeLessThan(17_000);
      expect(result.before).toMatchObject({ sessionKeys: 20_000, sessionKeysWithoutTtl: Number(estimate) });
      const ttl = result.plan.find((p) => p.stepId === 'set-session-ttl')!;
      expect(ttl.change).toMatchObject({ summary: ttlSummary(3600, 5000), observed: { wouldExpire: 5000, capped: true } });
      expect(await countWithoutTtl(`${sessions}*`)).toBe(15_000);
    });

    test('the estimate from a sample, and exact counts when the scan completed', () => {
      expect(keysWithoutTtl({ withoutTtl: 75, checked: 100, complete: false }, 20_000)).toEqual({ count: 15_000, sampled: true, checked: 100 });
      expect(keysWithoutTtl({ withoutTtl: 0, checked: 5000, complete: false }, 20_000)).toEqual({ count: 0, sampled: true, checked: 5000 });
      expect(keysWithoutTtl({ withoutTtl: 42, checked: 50, complete: true }, 50)).toEqual({ count: 42, sampled: false, checked: 50 });
      expect(keysWithoutTtl({ withoutTtl: 0, checked: 0, complete: true }, 0)).toEqual({ count: 0, sampled: false, checked: 0 });
    });

    test('attack: a TTL of 0, negative, under a minute, over 30 days or not whole is refused with a clear sentence before anything is touched', async () => {
      const { sessions } = await fill(300, 10);
      const tooShort = 'at least 60 seconds (a shorter TTL is a deletion: use the delete step)';
      const tooLong = 'at most 2592000 seconds (30 days)';
      await withRunbooks(config, async ({ runbooks, client, taskQueue }) => {
        for (const [ttl, message] of [
          [0, tooShort],
          [-3600, tooShort],
          [59, tooShort],
          [2_592_001, tooLong],
          [1e12, tooLong],
          [1.5, 'expected whole seconds'],
        ] as const) {
          await expect(runbooks.startRunbook('redisMemoryPressure', { mode: 'execute', sessionTtlSeconds: ttl }, { startedBy: 'erin' })).rejects.toThrow(
            `invalid input for redisMemoryPressure: sessionTtlSeconds: ${message}`,
          );
        }
        // Past the client's check, the workflow refuses the same input itself, before any activity.
        const handle = await client.workflow.start('redisMemoryPressure', { taskQueue, workflowId: `rmp-bad-${randomUUID()}`, args: [{ mode: 'execute', sessionTtlSeconds: 0 }] });
        const error = await handle.result().then(
          () => undefined,
          (err: unknown) => err,
        );
        expect(error).toBeInstanceOf(WorkflowFailedError);
        const failure = (error as WorkflowFailedError).cause as Error & { type?: string; nonRetryable?: boolean };
        expect(failure.message).toBe(`invalid input for redisMemoryPressure: sessionTtlSeconds: ${tooShort}`);
        expect([failure.type, failure.nonRetryable]).toEqual(['InvalidInput', true]);
        expect(await scheduledActivityTypes(handle)).toEqual([]);
      });
      expect(await countWithoutTtl(`${sessions}*`)).toBe(300);
    });
  });

  describe('Redis at its own maxmemory', () => {
    /** Sets maxmemory so that used_memory is `share` of it (the incident: Redis refusing writes as it nears maxmemory). */
    async function maxmemoryAt(share: number): Promise<number> {
      const bytes = Math.ceil((await usedMemory()) / share);
      await redis.config('SET', 'maxmemory', String(bytes));
      return bytes;
    }

    test('execute + approve with the container limit at its cap (no restart): maxmemory raised once (x1.5); a second run finds usage below the threshold and raises nothing', async () => {
      const { others } = await fill(2000, 200);
      // 75% of maxmemory used, threshold 60%: the raise (x1.5) brings it to about 50%. The limit is at
      // its cap, so Redis is not restarted (a restart would drop this CONFIG SET and the keys with it).
      const small = await maxmemoryAt(0.75);
      const expected = Math.floor(small * 1.5);
      const input = { mode: 'execute' as const, raiseWhenUsageAbove: 0.6, maxMemoryLimit: '512Mi' };
      const changed = steps.filter((step) => step !== 'raise-memory-limit');
      const first = await withRunbooks(config, async ({ runbooks }) => {
        const { workflowId } = await runbooks.startRunbook('redisMemoryPressure', input, { startedBy: 'erin' });
        for (const step of changed) {
          const pending = await pendingOf(runbooks, workflowId, step);
          if (step === 'raise-maxmemory') expect(pending.change.details).toEqual({ from: small, to: expected });
          await runbooks.approve(workflowId, { stepId: step, planHash: pending.planHash, approver: 'bob', reason: `approve ${step}` });
        }
        return runbooks.waitForResult<RedisMemoryPressureResult>(workflowId);
      });
      expect(first.outcome).toBe('completed');
      expect(first.causes).toContain('memory-pressure');
      expect(first.before.maxmemory).toBe(small);
      expect(first.before.usage).toBeGreaterThanOrEqual(0.6);
      expect(first.targetMaxmemory).toBe(expected);
      expect(first.timeline.filter((e) => e.event === 'applied').map((e) => e.stepId)).toEqual(changed);
      expect(await maxmemoryNow()).toBe(expected);
      expect(first.after?.maxmemory).toBe(expected);
      expect(first.after!.usage!).toBeLessThan(0.6);
      await othersIntact(others, 200);

      // The same runbook again: usage is now below the threshold, so nothing is raised a second time.
      const second = await withRunbooks(config, async ({ runbooks }) => {
        const { workflowId } = await runbooks.startRunbook('redisMemoryPressure', input, { startedBy: 'erin' });
        return runbooks.waitForResult<RedisMemoryPressureResult>(workflowId);
      });
      expect(second.outcome).toBe('nothing-to-do');
      expect(second.before.usage!).toBeLessThan(0.6);
      const planned = second.plan.find((p) => p.stepId === 'raise-maxmemory')!;
      expect(planned.change.needed).toBe(false);
      expect(planned.change.summary).toMatch(/^maxmemory stays [\d.]+MiB \(usage [\d.]+% of maxmemory below 60%\)$/);
      expect(second.targetMaxmemory).toBeUndefined();
      expect(await maxmemoryNow()).toBe(expected);
      expect(await memoryLimit()).toBe('512Mi');
    });

    test('plan: the target is capped at the share of the new limit, or nothing when maxmemory is already there; nothing changes', async () => {
      await fill(500, 50);
      const near = 450 * Mi; // 88% of the 512Mi limit: 675Mi of 768Mi would leave Redis no headroom
      await redis.config('SET', 'maxmemory', String(near));
      const run = (input: Record<string, unknown>) =>
        withRunbooks(config, async ({ runbooks }) => {
          const { workflowId } = await runbooks.startRunbook('redisMemoryPressure', { raiseWhenUsageAbove: 0, ...input }, { startedBy: 'erin' });
          return runbooks.waitForResult<RedisMemoryPressureResult>(workflowId);
        });
      const capped = await run({});
      const cap = Math.floor(768 * Mi * 0.8);
      const step = capped.plan.find((p) => p.stepId === 'raise-maxmemory')!;
      expect(step.change).toMatchObject({ needed: true, details: { from: near, to: cap } });
      expect(step.change.summary).toMatch(
        /^CONFIG SET maxmemory 450\.0MiB -> 614\.4MiB \(.*keeps maxmemory at 88% of the container limit, raised 512Mi -> 768Mi; capped at 80% of the container limit 768Mi\); lost on restart/,
      );
      expect(capped.targetMaxmemory).toBe(cap);

      const atShare = await run({ maxmemoryShareOfLimit: 0.5 });
      const none = atShare.plan.find((p) => p.stepId === 'raise-maxmemory')!;
      expect(none.change).toMatchObject({ needed: false, summary: 'maxmemory stays 450.0MiB: already at or above 50% of the container limit 768Mi (384.0MiB)' });
      expect(atShare.targetMaxmemory).toBeUndefined();
      expect(atShare.timeline).toContainEqual(expect.objectContaining({ event: 'skipped', stepId: 'raise-maxmemory', detail: `nothing to change: ${none.change.summary}` }));
      expect(await maxmemoryNow()).toBe(near);
      expect(await memoryLimit()).toBe('512Mi');
    });

    test('no maxmemory (0): the plan says there is nothing to raise, and only the container limit is proposed', async () => {
      await fill(500, 50);
      await redis.config('SET', 'maxmemory', '0');
      const result = await withRunbooks(config, async ({ runbooks }) => {
        const { workflowId } = await runbooks.startRunbook('redisMemoryPressure', { raiseWhenUsageAbove: 0 }, { startedBy: 'erin' });
        return runbooks.waitForResult<RedisMemoryPressureResult>(workflowId);
      });
      expect(result.outcome).toBe('planned');
      expect(result.before.maxmemory).toBe(0);
      const step = result.plan.find((p) => p.stepId === 'raise-maxmemory')!;
      expect(step.change).toEqual({ summary: 'Redis has no maxmemory (0): nothing to raise (only the container limit bounds it)', needed: false });
      expect(result.plan.find((p) => p.stepId === 'raise-memory-limit')!.change.needed).toBe(true);
      expect(result.targetMaxmemory).toBeUndefined();
      expect(await maxmemoryNow()).toBe(0);
    });

    test('the target, computed from the diagnosis alone', () => {
      const limit = 512 * Mi;
      // Limit raised: the same share of the new limit (not x factor on top of it).
      expect(raisedMaxmemory({ maxmemory: 256 * Mi, limitBytes: limit, newLimitBytes: 768 * Mi, factor: 1.5, share: 0.8 })).toEqual({
        bytes: 384 * Mi,
        basis: 'ratio',
        capped: false,
        limitBytes: 768 * Mi,
      });
      // A limit raise stopped by its cap (3Gi -> 4Gi): the ratio follows the limit actually set.
      expect(raisedMaxmemory({ maxmemory: 2048 * Mi, limitBytes: 3072 * Mi, newLimitBytes: 4096 * Mi, factor: 1.5, share: 0.8 })?.bytes).toBe(Math.floor(2048 * Mi * (4096 / 3072)));
      // Limit not raised (rejected, at its cap): x factor, capped at the share of the current limit.
      expect(raisedMaxmemory({ maxmemory: 200 * Mi, limitBytes: limit, factor: 1.5, share: 0.8 })).toEqual({ bytes: 300 * Mi, basis: 'factor', capped: false, limitBytes: limit });
      expect(raisedMaxmemory({ maxmemory: 300 * Mi, limitBytes: limit, factor: 1.5, share: 0.8 })).toEqual({ bytes: Math.floor(limit * 0.8), basis: 'factor', capped: true, limitBytes: limit });
      // No container limit: x factor, uncapped.
      expect(raisedMaxmemory({ maxmemory: 100 * Mi, factor: 2, share: 0.8 })).toEqual({ bytes: 200 * Mi, basis: 'factor', capped: false });
      // No maxmemory: nothing to raise.
      expect(raisedMaxmemory({ maxmemory: 0, limitBytes: limit, newLimitBytes: 768 * Mi, factor: 1.5, share: 0.8 })).toBeUndefined();
    });
  });
});
