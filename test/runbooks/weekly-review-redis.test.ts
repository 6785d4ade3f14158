import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import type { CheckRow, ChecklistResult } from '../../common/checklist';
import { recordHistory } from '../helpers/histories';
import { scheduledActivityTypes, terminateRuns } from '../helpers/runbook-runs';
import { testbedConfig, testbedEnv } from '../helpers/testbed';
import { withRunbooks } from '../helpers/worker';

const namespace = 'short-drama-prod';

/**
 * weeklyReview's Redis row (Redis优化 → 设置过期时间) against the test bed's real Redis (db 0, the
 * runbook's REDIS_URL, whose session:* keys only redis-memory-pressure.test.ts and this file make,
 * each under a unique prefix and removed afterwards). Plan mode: the review changes nothing; the
 * row is read-only. The other rows are weekly-review.test.ts's (it needs the real node).
 */
describe('weeklyReview: Redis keys without a TTL', () => {
  const env = testbedEnv();
  const config = testbedConfig();
  let redis: Redis;
  const made: string[] = [];

  async function scanAll(pattern: string): Promise<string[]> {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, page] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 5000);
      cursor = next;
      keys.push(...page);
    } while (cursor !== '0');
    return keys;
  }

  async function withoutTtl(pattern: string): Promise<number> {
    const keys = await scanAll(pattern);
    const pipeline = redis.pipeline();
    for (const key of keys) pipeline.ttl(key);
    return ((await pipeline.exec()) ?? []).filter(([, ttl]) => ttl === -1).length;
  }

  /** A plan-mode review, and the activity types its run scheduled. */
  async function runWeekly(input: Record<string, unknown> = {}, scenario?: string): Promise<ChecklistResult & { activities: string[] }> {
    return withRunbooks(config, async ({ runbooks, client }) => {
      const { workflowId } = await runbooks.startRunbook('weeklyReview', { mode: 'plan', ...input }, { startedBy: 'erin' });
      const result = await runbooks.waitForResult<ChecklistResult>(workflowId);
      const handle = client.workflow.getHandle(workflowId);
      if (scenario) await recordHistory(handle, scenario);
      return { ...result, activities: await scheduledActivityTypes(handle) };
    });
  }

  const rowOf = (result: ChecklistResult, id: string): CheckRow => {
    const row = result.checks.find((r) => r.id === id);
    if (!row) throw new Error(`no row ${id}; rows: ${result.checks.map((r) => r.id).join(', ')}`);
    return row;
  };

  beforeAll(async () => {
    redis = new Redis(env.TESTBED_REDIS_ADMIN_URL!);
    await terminateRuns(config.temporal, [`weeklyReview/${namespace}`]);
  });

  beforeEach(async () => {
    expect(await scanAll('session:*')).toEqual([]); // db 0's session keys are made by tests only
  });

  afterEach(async () => {
    await terminateRuns(config.temporal, [`weeklyReview/${namespace}`]);
    for (const prefix of made.splice(0)) {
      const keys = await scanAll(`${prefix}*`);
      if (keys.length) await redis.unlink(...keys);
    }
  });

  afterAll(() => redis.disconnect());

  test('keys without a TTL are a WARN row with their count (keys with one do not count), read-only; once they all have one, PASS', async () => {
    const prefix = `session:wr-${randomUUID().slice(0, 8)}:`;
    made.push(prefix);
    const pipeline = redis.pipeline();
    for (let i = 0; i < 30; i++) pipeline.set(`${prefix}none-${i}`, 'v');
    for (let i = 0; i < 20; i++) pipeline.set(`${prefix}ttl-${i}`, 'v', 'EX', 3600);
    await pipeline.exec();

    const found = await runWeekly({}, 'redis-keys-without-ttl');
    expect(rowOf(found, 'redis.keys-without-ttl')).toEqual({
      id: 'redis.keys-without-ttl',
      section: 'Redis优化',
      title: 'Redis keys matching session:* without a TTL',
      status: 'WARN',
      value: '30 of 50',
      threshold: '0 (设置过期时间: every such key expires)',
      detail: "they stay until deleted or evicted: redisMemoryPressure's set-session-ttl step gives them the manual's TTL (sessionTtlSeconds, 3600 s), capped and approved",
    });
    expect(await withoutTtl(`${prefix}*`)).toBe(30); // read-only
    expect(found.activities).toEqual(expect.arrayContaining(['countRedisKeys', 'countRedisKeysWithoutTtl']));
    expect(found.activities).not.toContain('expireRedisKeys');

    const keys = await scanAll(`${prefix}none-*`);
    const expire = redis.pipeline();
    for (const key of keys) expire.expire(key, 600);
    await expire.exec();
    const healthy = await runWeekly();
    expect(rowOf(healthy, 'redis.keys-without-ttl')).toMatchObject({ status: 'PASS', value: '0 of 50', detail: 'every one of the 50 keys has a TTL' });
  });

  test('a pattern outside the allowlist: the row says it could not run (WARN), nothing of Redis is read, the review still completes', async () => {
    const result = await runWeekly({ sessionPattern: 'user:*' });
    const row = rowOf(result, 'redis-keys-ttl');
    expect(row.status).toBe('WARN');
    expect(row.detail).toMatch(/Redis key pattern "user:\*" is not in the allowlist/);
    expect(result.checks.find((r) => r.id === 'redis.keys-without-ttl')).toBeUndefined();
    expect(result.activities.filter((type) => /Redis/.test(type))).toEqual([]);
    expect(result.timeline.some((e) => e.event === 'finished')).toBe(true);
  });

  test('bad input: a pattern matching every key is refused with a clear sentence', async () => {
    await withRunbooks(config, async ({ runbooks }) => {
      await expect(runbooks.startRunbook('weeklyReview', { mode: 'plan', sessionPattern: '*' }, { startedBy: 'erin' })).rejects.toThrow(
        'invalid input for weeklyReview: sessionPattern: would match every key',
      );
    });
  });
});
