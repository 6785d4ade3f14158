import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { Runtime } from '@temporalio/worker';
import { AppsV1Api, PatchUtils, type V1ResourceRequirements } from '@kubernetes/client-node';
import Redis from 'ioredis';
import { createActivities } from '../../activities';
import type { SetResourcesInput } from '../../activities/kubernetes-rollouts';
import { createRunbookClient } from '../../client';
import { waitUntil } from '../../scripts/testbed/processes';
import type { RedisMemoryPressureResult } from '../../workflows/redis-memory-pressure';
import { recordHistory } from '../helpers/histories';
import { adminKubeConfig } from '../helpers/kube-cluster';
import { testbedConfig, testbedEnv } from '../helpers/testbed';
import { withWorker } from '../helpers/worker';
import { buildDependencies } from '../../workers/dependencies';
import { pendingOf, readBucketText, scheduledActivityTypes, terminateRuns } from '../helpers/runbook-runs';

const namespace = 'short-drama-prod';
const steps = ['delete-session-keys', 'raise-memory-limit', 'set-maxmemory-policy'];

/**
 * 场景3 against the real Redis (db 0 of the test bed, the runbook's configured REDIS_URL) and the
 * real Kubernetes API. Other test files keep out of `session:*` in db 0; every key made here carries
 * a unique run prefix and is removed afterwards, and the redis Deployment's seed resources and the
 * server's maxmemory-policy are put back after every test.
 */
describe('redisMemoryPressure', () => {
  const env = testbedEnv();
  const config = testbedConfig({ RUNBOOK_APPROVERS: JSON.stringify([{ id: 'bob', roles: ['l2'] }, { id: 'carol', roles: ['manager'] }]) });
  const apps = adminKubeConfig().makeApiClient(AppsV1Api);
  let redis: Redis;
  let originalPolicy: string;
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

  async function othersIntact(others: string[], each: number): Promise<void> {
    for (const prefix of others) expect(await countKeys(`${prefix}*`)).toBe(each);
  }


  /** Runs share one workflow id per target (dedupe): a run left behind by a failed test must not be joined by the next. */
  async function terminateLeftover(): Promise<void> {
    await terminateRuns(config.temporal, [`redisMemoryPressure/${namespace}/redis`, `lock/${namespace}/redis`]);
  }

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
  }

  beforeAll(async () => {
    redis = new Redis(env.REDIS_URL!);
    originalPolicy = ((await redis.config('GET', 'maxmemory-policy')) as string[])[1]!;
    const seed = await redisContainer();
    seedResources = seed.resources;
    seedContainerIndex = seed.index;
    expect(seedResources.limits?.memory).toBe('512Mi'); // the seed; 1.5x is 768Mi
    await terminateLeftover();
  });

  beforeEach(async () => {
    await redis.config('SET', 'maxmemory-policy', 'noeviction'); // the state of an incident
    expect(await countKeys('session:*')).toBe(0); // db 0's session keys are this file's alone
  });

  afterEach(async () => {
    await terminateLeftover();
    for (const prefix of made.splice(0)) await unlinkAll(`${prefix}*`);
    await redis.config('SET', 'maxmemory-policy', originalPolicy);
    await restoreSeed();
  });

  afterAll(async () => {
    await restoreSeed();
    redis.disconnect();
  });

  test('plan: names the exact changes and changes nothing', async () => {
    const { sessions, others } = await fill(3000, 200);
    const result = await withWorker(config, async ({ client, taskQueue }) => {
      const runbooks = createRunbookClient({ client, taskQueue });
      const { workflowId } = await runbooks.startRunbook('redisMemoryPressure', { raiseWhenUsageAbove: 0 }, { startedBy: 'erin' });
      return runbooks.waitForResult<RedisMemoryPressureResult>(workflowId);
    });
    expect(result.outcome).toBe('planned');
    expect(result.plan.map((p) => [p.stepId, p.change.summary])).toEqual([
      ['delete-session-keys', 'delete keys matching session:* (SCAN + UNLINK in batches), at most 100000'],
      ['raise-memory-limit', 'memory limit of short-drama-prod/redis container redis 512Mi -> 768Mi (x1.5, cap 4Gi)'],
      ['set-maxmemory-policy', 'CONFIG SET maxmemory-policy noeviction -> allkeys-lru'],
    ]);
    expect(result.plan[0]!.change.observed).toEqual({ matching: 3000, wouldDelete: 3000, capped: false });
    expect(result.causes).toEqual(['memory-pressure', 'session-keys', 'no-eviction']);
    expect(result.before).toMatchObject({ sessionKeys: 3000, maxmemoryPolicy: 'noeviction', memoryLimit: '512Mi' });
    expect(result.before.dbsize).toBeGreaterThanOrEqual(3600);
    expect(result.targetMemoryLimit).toBe('768Mi');
    expect(result.after).toBeUndefined();
    // Nothing changed.
    expect(await countKeys(`${sessions}*`)).toBe(3000);
    await othersIntact(others, 200);
    expect(await memoryLimit()).toBe('512Mi');
    expect(((await redis.config('GET', 'maxmemory-policy')) as string[])[1]).toBe('noeviction');
    expect(result.report?.markdownKey).toMatch(/^runbooks\/reports\/redisMemoryPressure\//);
  });

  test('execute + approve: only session keys go, the memory limit is raised once (x1.5), allkeys-lru on the server, report written', async () => {
    const { revision: revisionBefore } = await redisContainer();
    const { sessions, others } = await fill(4000, 300);
    const result = await withWorker(config, async ({ client, taskQueue }) => {
      const runbooks = createRunbookClient({ client, taskQueue });
      const { workflowId } = await runbooks.startRunbook('redisMemoryPressure', { mode: 'execute', raiseWhenUsageAbove: 0, severity: 'P1' }, { startedBy: 'erin' });
      for (const step of steps) {
        const pending = await pendingOf(runbooks, workflowId, step);
        await runbooks.approve(workflowId, { stepId: step, planHash: pending.planHash, approver: 'bob', reason: `approve ${step}` });
      }
      const finished = await runbooks.waitForResult<RedisMemoryPressureResult>(workflowId);
      await recordHistory(client.workflow.getHandle(workflowId), 'redis-memory-pressure-approved');
      return finished;
    });
    expect(result.outcome).toBe('completed');
    expect(result.timeline.filter((e) => e.event === 'applied').map((e) => [e.stepId, e.detail])).toEqual([
      ['delete-session-keys', expect.stringMatching(/^deleted 4000 keys matching session:\* in \d+ UNLINK batches$/)],
      ['raise-memory-limit', expect.stringMatching(/limits\.memory 512Mi -> 768Mi$/)],
      ['set-maxmemory-policy', 'maxmemory-policy noeviction -> allkeys-lru'],
    ]);
    // The real systems.
    expect(await countKeys('session:*')).toBe(0);
    expect(await countKeys(`${sessions}*`)).toBe(0);
    await othersIntact(others, 300);
    const after = await redisContainer();
    expect(after.resources.limits?.memory).toBe('768Mi');
    expect(after.resources.limits?.cpu).toBe(seedResources.limits?.cpu);
    expect(after.resources.requests).toEqual(seedResources.requests);
    expect(after.revision).toBe(revisionBefore + 1); // one template change
    expect(((await redis.config('GET', 'maxmemory-policy')) as string[])[1]).toBe('allkeys-lru');
    expect(result.after).toMatchObject({ sessionKeys: 0, maxmemoryPolicy: 'allkeys-lru', memoryLimit: '768Mi' });

    const markdown = await readBucketText(result.report!.markdownKey);
    for (const part of ['## Timeline', '## Impact', '## Root cause', '## Solution', '## Prevention']) expect(markdown).toContain(part);
    expect(markdown).toContain('4000 of');
  });

  test('execute + reject: nothing changes and the run says what was not done', async () => {
    const { sessions, others } = await fill(1500, 100);
    const result = await withWorker(config, async ({ client, taskQueue }) => {
      const runbooks = createRunbookClient({ client, taskQueue });
      const { workflowId } = await runbooks.startRunbook('redisMemoryPressure', { mode: 'execute', raiseWhenUsageAbove: 0 }, { startedBy: 'erin' });
      for (const step of steps) {
        const pending = await pendingOf(runbooks, workflowId, step);
        await runbooks.reject(workflowId, { stepId: step, planHash: pending.planHash, approver: 'carol', reason: 'not now' });
      }
      return runbooks.waitForResult<RedisMemoryPressureResult>(workflowId);
    });
    expect(result.outcome).toBe('rejected');
    expect(result.timeline.filter((e) => e.event === 'skipped').map((e) => [e.stepId, e.detail])).toEqual(steps.map((s) => [s, 'rejected']));
    expect(result.timeline.filter((e) => e.event === 'applied')).toEqual([]);
    expect(await countKeys(`${sessions}*`)).toBe(1500);
    await othersIntact(others, 100);
    expect(await memoryLimit()).toBe('512Mi');
    expect(((await redis.config('GET', 'maxmemory-policy')) as string[])[1]).toBe('noeviction');
  });

  test('a worker lost between two steps: another worker resumes, and the limit is raised exactly once', async () => {
    const { revision: revisionBefore } = await redisContainer();
    const { others } = await fill(2000, 100);
    let workflowId = '';
    // First worker: start, approve the key deletion and the limit raise, then the worker goes away before the policy step.
    await withWorker(config, async ({ client, taskQueue }) => {
      const runbooks = createRunbookClient({ client, taskQueue });
      ({ workflowId } = await runbooks.startRunbook('redisMemoryPressure', { mode: 'execute', raiseWhenUsageAbove: 0 }, { startedBy: 'erin' }));
      for (const step of ['delete-session-keys', 'raise-memory-limit']) {
        const pending = await pendingOf(runbooks, workflowId, step);
        await runbooks.approve(workflowId, { stepId: step, planHash: pending.planHash, approver: 'bob', reason: `approve ${step}` });
      }
      await pendingOf(runbooks, workflowId, 'set-maxmemory-policy');
    });
    expect(await memoryLimit()).toBe('768Mi');
    // Second worker (a new process would do the same): the run goes on from its history.
    const result = await withWorker(config, async ({ client, taskQueue }) => {
      const runbooks = createRunbookClient({ client, taskQueue });
      const pending = await pendingOf(runbooks, workflowId, 'set-maxmemory-policy');
      await runbooks.approve(workflowId, { stepId: 'set-maxmemory-policy', planHash: pending.planHash, approver: 'bob', reason: 'set the policy' });
      return runbooks.waitForResult<RedisMemoryPressureResult>(workflowId);
    });
    expect(result.outcome).toBe('completed');
    expect(result.timeline.filter((e) => e.event === 'applied').map((e) => e.stepId)).toEqual(steps);
    expect(result.targetMemoryLimit).toBe('768Mi');
    const after = await redisContainer();
    expect(after.resources.limits?.memory).toBe('768Mi'); // not 1152Mi
    expect(after.revision).toBe(revisionBefore + 1);
    expect(await countKeys('session:*')).toBe(0);
    await othersIntact(others, 100);
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
          for (const step of steps) {
            const pending = await pendingOf(runbooks, workflowId, step);
            await runbooks.approve(workflowId, { stepId: step, planHash: pending.planHash, approver: 'bob', reason: `approve ${step}` });
          }
          return runbooks.waitForResult<RedisMemoryPressureResult>(workflowId);
        },
        { activities: { setContainerResources } },
      );
      expect(failed).toBe(2); // the failed attempt and its retry
      expect(result.outcome).toBe('completed');
      expect(result.timeline.filter((e) => e.event === 'applied').map((e) => [e.stepId, e.detail])).toEqual([
        ['delete-session-keys', expect.stringMatching(/^deleted 1000 keys/)],
        ['raise-memory-limit', 'limits.memory already 768Mi'],
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
    await withWorker(config, async ({ client, taskQueue }) => {
      const runbooks = createRunbookClient({ client, taskQueue });
      await expect(runbooks.startRunbook('redisMemoryPressure', { memoryLimitFactor: 0.5 }, { startedBy: 'erin' })).rejects.toThrow(
        'invalid input for redisMemoryPressure: memoryLimitFactor: must be above 1 (the limit is raised, never lowered)',
      );
      // Past the client's check, the workflow refuses the same input itself, before any activity.
      const nonsense = await client.workflow.start('redisMemoryPressure', { taskQueue, workflowId: `rmp-bad-${randomUUID()}`, args: [{ memoryLimitFactor: -3, maxMemoryLimit: 'lots', mode: 'execute' }] });
      const invalid = await nonsense.result().then(() => undefined, (err: unknown) => err);
      expect(invalid).toBeInstanceOf(WorkflowFailedError);
      const failure = (invalid as WorkflowFailedError).cause as Error & { type?: string; nonRetryable?: boolean };
      expect(failure.message).toBe(
        'invalid input for redisMemoryPressure: memoryLimitFactor: must be above 1 (the limit is raised, never lowered); maxMemoryLimit: expected a memory quantity of at least 1Mi, such as 512Mi or 4Gi',
      );
      expect([failure.type, failure.nonRetryable]).toEqual(['InvalidInput', true]);
      const scheduled = scheduledActivityTypes;
      expect(await scheduled(nonsense)).toEqual([]);

      const handle = await client.workflow.start('redisMemoryPressure', { taskQueue, workflowId: `rmp-bad-${randomUUID()}`, args: [{ namespace: 'kube-system', mode: 'execute', raiseWhenUsageAbove: 0 }] });
      const error = await handle.result().then(() => undefined, (err: unknown) => err);
      expect(error).toBeInstanceOf(WorkflowFailedError);
      expect(String(((error as WorkflowFailedError).cause?.cause as Error | undefined)?.message)).toBe('namespace kube-system is never touched by runbooks');
      expect(await scheduled(handle)).toEqual(['loadApprovalPolicy', 'assertTargetsAllowed']);
    });
    expect(await countKeys(`${sessions}*`)).toBe(500);
    await othersIntact(others, 50);
    expect(await memoryLimit()).toBe('512Mi');
    expect(((await redis.config('GET', 'maxmemory-policy')) as string[])[1]).toBe('noeviction');
  });
});
