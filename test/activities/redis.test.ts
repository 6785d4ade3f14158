import type { Info } from '@temporalio/activity';
import { randomUUID } from 'node:crypto';
import { CancelledFailure } from '@temporalio/common';
import Redis from 'ioredis';
import { parseInfo, type DeleteRedisKeysProgress, type ExpireRedisKeysProgress } from '../../activities/redis';
import { activityHarness, type ActivityHarness } from '../helpers/activity-context';
import { testbedEnv } from '../helpers/testbed';
import { failureOf } from '../helpers/failures';

/**
 * The Redis activities against the test bed's real Redis 7. Everything here runs in logical
 * database 14 (db 0 is shared with other test files, db 15 with the bench), on keys under a
 * unique `session:test-<uuid>:` prefix per test, with that pattern allowlisted through the
 * harness's ALLOWED_REDIS_KEY_PATTERNS override.
 */
const testDb = 14;
const env = testbedEnv();
const redisUrl = env.REDIS_URL!.replace(/\/\d*$/, `/${testDb}`);

let raw: Redis;
const harnesses: ActivityHarness[] = [];
const createdPrefixes: string[] = [];

function harness(patterns: string[], heartbeatDetails?: unknown, extra: Record<string, string | undefined> = {}, info: Partial<Info> = {}): ActivityHarness {
  const h = activityHarness({ REDIS_URL: redisUrl, ALLOWED_REDIS_KEY_PATTERNS: ['session:*', ...patterns].join(','), ...extra }, heartbeatDetails, info);
  harnesses.push(h);
  return h;
}

function uniquePrefix(): string {
  const prefix = `session:test-${randomUUID()}:`;
  createdPrefixes.push(prefix);
  return prefix;
}

async function fill(prefix: string, count: number, value = 'v'): Promise<void> {
  for (let at = 0; at < count; at += 1000) {
    const args: string[] = [];
    for (let i = at; i < Math.min(count, at + 1000); i++) args.push(`${prefix}${i}`, value);
    await raw.mset(...args);
  }
}

/** Like fill, but every key with a TTL of `seconds` (keys the app did give one). */
async function fillWithTtl(prefix: string, count: number, seconds: number, from = 0): Promise<void> {
  const pipeline = raw.pipeline();
  for (let i = from; i < from + count; i++) pipeline.set(`${prefix}${i}`, 'v', 'EX', seconds);
  await pipeline.exec();
}

/** The TTL (seconds) of every key matching, from the test side: -1 for none. */
async function ttlsOf(pattern: string): Promise<Map<string, number>> {
  const ttls = new Map<string, number>();
  let cursor = '0';
  do {
    const [next, keys] = await raw.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    const pipeline = raw.pipeline();
    for (const key of keys) pipeline.ttl(key);
    const replies = (await pipeline.exec()) ?? [];
    keys.forEach((key, i) => ttls.set(key, replies[i]![1] as number));
    cursor = next;
  } while (cursor !== '0');
  return ttls;
}

/** Keys matching without a TTL, from the test side. */
async function countWithoutTtl(pattern: string): Promise<number> {
  return [...(await ttlsOf(pattern)).values()].filter((ttl) => ttl === -1).length;
}

/** Counts with SCAN from the test side (independent of the activity under test). */
async function countKeys(pattern: string): Promise<number> {
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await raw.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    n += keys.length;
    cursor = next;
  } while (cursor !== '0');
  return n;
}

async function removeAll(pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await raw.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    if (keys.length > 0) await raw.unlink(...keys);
    cursor = next;
  } while (cursor !== '0');
}

beforeAll(() => {
  // The default user: the worker's ACL user (REDIS_URL) may not MSET, nor touch keys outside its patterns.
  raw = new Redis(env.TESTBED_REDIS_ADMIN_URL!.replace(/\/\d*$/, `/${testDb}`));
});

afterEach(async () => {
  await Promise.all(harnesses.splice(0).map((h) => h.close()));
});

afterAll(async () => {
  for (const prefix of createdPrefixes) {
    await removeAll(`${prefix}*`);
    await removeAll(`ballast-${prefix}*`);
  }
  raw.disconnect();
});

describe('redisMemoryInfo', () => {
  test('INFO memory and DBSIZE as numbers of the real server', async () => {
    const prefix = uniquePrefix();
    await fill(prefix, 500, 'x'.repeat(100));
    const h = harness([]);
    const info = await h.run('redisMemoryInfo');
    const [, maxmemory] = (await raw.config('GET', 'maxmemory')) as string[];
    const [, policy] = (await raw.config('GET', 'maxmemory-policy')) as string[];
    expect(info.maxmemory).toBe(Number(maxmemory));
    expect(info.maxmemoryPolicy).toBe(policy);
    expect(info.usedMemory).toBeGreaterThan(500 * 100);
    expect(info.usedMemoryPeak).toBeGreaterThanOrEqual(info.usedMemory);
    expect(info.memFragmentationRatio).toBeGreaterThan(0);
    expect(info.usedMemoryRatio).toBeCloseTo(info.usedMemory / info.maxmemory, 2);
    // db 14 belongs to this file and its tests run one after another: DBSIZE is exact.
    expect(info.dbsize).toBe(await raw.dbsize());
    expect(info.dbsize).toBeGreaterThanOrEqual(500);
    expect(JSON.parse(JSON.stringify(info))).toEqual(info);
  });

  test('Redis not configured: InvalidInput, not a crash', async () => {
    const h = harness([], undefined, { REDIS_URL: undefined });
    const err = await failureOf(h.run('redisMemoryInfo'));
    expect(err.type).toBe('InvalidInput');
    expect(err.nonRetryable).toBe(true);
  });
});

describe('maxmemory-policy', () => {
  test('get, dry-run set, set, set again: before -> after, no change the second time; bad names refused', async () => {
    const h = harness([]);
    const [, original] = (await raw.config('GET', 'maxmemory-policy')) as [string, string];
    const target = original === 'allkeys-lru' ? 'volatile-lru' : 'allkeys-lru';
    try {
      expect(await h.run('getMaxmemoryPolicy')).toEqual({ policy: original });

      const dry = await h.run('setMaxmemoryPolicy', { policy: target, dryRun: true });
      expect(dry).toEqual({ before: original, after: target, changed: false, dryRun: true });
      expect(((await raw.config('GET', 'maxmemory-policy')) as string[])[1]).toBe(original);

      const first = await h.run('setMaxmemoryPolicy', { policy: target });
      expect(first).toEqual({ before: original, after: target, changed: true, dryRun: false });
      expect(((await raw.config('GET', 'maxmemory-policy')) as string[])[1]).toBe(target);

      const second = await h.run('setMaxmemoryPolicy', { policy: target });
      expect(second).toEqual({ before: target, after: target, changed: false, dryRun: false });
      expect(((await raw.config('GET', 'maxmemory-policy')) as string[])[1]).toBe(target);

      for (const policy of ['lru', 'ALLKEYS-LRU', '', 'allkeys-lru; FLUSHALL']) {
        const err = await failureOf(h.run('setMaxmemoryPolicy', { policy }));
        expect(err.type).toBe('InvalidInput');
      }
      expect(((await raw.config('GET', 'maxmemory-policy')) as string[])[1]).toBe(target);
    } finally {
      await raw.config('SET', 'maxmemory-policy', original);
    }
  });
});

describe('maxmemory', () => {
  const maxmemoryNow = async () => Number(((await raw.config('GET', 'maxmemory')) as string[])[1]);

  test('dry-run set, set, set again: before -> after, no change the second time', async () => {
    const h = harness([]);
    const original = await maxmemoryNow();
    // A value of this test's own, distinct from whatever the server has, and far above its use.
    const start = 300 * 2 ** 20;
    const target = start + 64 * 2 ** 20 + 12345;
    try {
      await raw.config('SET', 'maxmemory', String(start));

      const dry = await h.run('setMaxmemory', { bytes: target, dryRun: true });
      expect(dry).toEqual({ before: start, after: target, changed: false, dryRun: true });
      expect(await maxmemoryNow()).toBe(start);

      const first = await h.run('setMaxmemory', { bytes: target });
      expect(first).toEqual({ before: start, after: target, changed: true, dryRun: false });
      expect(await maxmemoryNow()).toBe(target);
      expect((await h.run('redisMemoryInfo')).maxmemory).toBe(target);

      const second = await h.run('setMaxmemory', { bytes: target });
      expect(second).toEqual({ before: target, after: target, changed: false, dryRun: false });
      expect(await maxmemoryNow()).toBe(target);
    } finally {
      await raw.config('SET', 'maxmemory', String(original));
    }
  });

  test('refuses 0 (no limit), negative, fractional and non-numeric bytes, non-retryable, and touches nothing', async () => {
    const h = harness([]);
    const original = await maxmemoryNow();
    const zero = await failureOf(h.run('setMaxmemory', { bytes: 0 }));
    expect([zero.type, zero.nonRetryable]).toEqual(['InvalidInput', true]);
    expect(zero.message).toMatch(/would remove the limit/);
    for (const bytes of [-1, -268435456, 1.5, 268435456.5, Number.NaN, Number.POSITIVE_INFINITY, '268435456', '256mb', null, undefined]) {
      const err = await failureOf(h.run('setMaxmemory', { bytes: bytes as number, dryRun: false })); // what a caller past the types could send
      expect([err.type, err.nonRetryable]).toEqual(['InvalidInput', true]);
      expect(err.message).toMatch(/expected a positive whole number of bytes/);
    }
    expect(await maxmemoryNow()).toBe(original);
  });
});

describe('countRedisKeys', () => {
  test('counts only the matching keys, by SCAN', async () => {
    const prefix = uniquePrefix();
    const other = uniquePrefix();
    await fill(prefix, 1234);
    await fill(other, 321);
    const h = harness([]);
    const result = await h.run('countRedisKeys', { pattern: `${prefix}*`, scanCount: 100 });
    expect(result.pattern).toBe(`${prefix}*`);
    expect(result.count).toBe(1234);
    expect(result.scans).toBeGreaterThan(1);
    expect((await h.run('countRedisKeys', { pattern: `${other}*` })).count).toBe(321);
    expect((await h.run('countRedisKeys', { pattern: `${prefix}nothing-*` })).count).toBe(0);
  });

  test('a retried count resumes from its heartbeat cursor and running count', async () => {
    const prefix = uniquePrefix();
    const pattern = `${prefix}*`;
    await fill(prefix, 2000);
    const [cursor, firstPage] = await raw.scan('0', 'MATCH', pattern, 'COUNT', 300);
    expect(cursor).not.toBe('0');
    const h = harness([], { countPattern: pattern, cursor, count: 10_000, scans: 1 });
    const result = await h.run('countRedisKeys', { pattern, scanCount: 300 });
    expect(result.count).toBe(10_000 + 2000 - firstPage.length);
    expect(result.scans).toBeGreaterThan(1);
  });

  test('bad input: empty pattern, nonsense scanCount', async () => {
    const h = harness([]);
    expect((await failureOf(h.run('countRedisKeys', { pattern: '' }))).type).toBe('InvalidInput');
    expect((await failureOf(h.run('countRedisKeys', { pattern: 'session:*', scanCount: 0 }))).type).toBe('InvalidInput');
    expect((await failureOf(h.run('countRedisKeys', { pattern: 'session:*', scanCount: 2.5 }))).type).toBe('InvalidInput');
  });
});

describe('deleteRedisKeys', () => {
  test('deletes every matching key in batches, leaves the others, heartbeats progress; a second run deletes nothing', async () => {
    const prefix = uniquePrefix();
    const other = uniquePrefix();
    await fill(prefix, 2500);
    await fill(other, 500);
    const pattern = `${prefix}*`;
    const h = harness([pattern]);

    const callsOf = async (command: string) => Number(/calls=(\d+)/.exec(parseInfo(await raw.info('commandstats'))[`cmdstat_${command}`] ?? '')?.[1] ?? 0);
    const forbidden = ['keys', 'flushdb', 'flushall'];
    const forbiddenBefore = await Promise.all(forbidden.map(callsOf));
    const unlinksBefore = await callsOf('unlink');
    const result = await h.run('deleteRedisKeys', { pattern, maxKeys: 10_000, scanCount: 200, batchSize: 100 });
    expect(result).toMatchObject({ pattern, dryRun: false, deleted: 2500, capped: false });
    // Server-side proof: UNLINKs were sent, and no KEYS or FLUSH* (counted by the server for all clients).
    expect(await Promise.all(forbidden.map(callsOf))).toEqual(forbiddenBefore);
    expect((await callsOf('unlink')) - unlinksBefore).toBeGreaterThanOrEqual(result.batches);
    expect(result.batches).toBeGreaterThanOrEqual(25);
    expect(result.resumedFrom).toBeUndefined();
    expect(await countKeys(pattern)).toBe(0);
    expect(await countKeys(`${other}*`)).toBe(500);

    const progress = h.heartbeats as DeleteRedisKeysProgress[];
    expect(progress.length).toBeGreaterThan(2);
    for (let i = 1; i < progress.length; i++) expect(progress[i]!.deleted).toBeGreaterThanOrEqual(progress[i - 1]!.deleted);
    expect(progress[progress.length - 1]).toMatchObject({ pattern, deleted: 2500, done: true, capped: false });

    const again = harness([pattern]);
    const second = await again.run('deleteRedisKeys', { pattern, maxKeys: 10_000 });
    expect(second).toMatchObject({ pattern, deleted: 0, capped: false, batches: 0 });
    expect(await countKeys(`${other}*`)).toBe(500);
  });

  test('dry run counts and deletes nothing', async () => {
    const prefix = uniquePrefix();
    await fill(prefix, 700);
    const pattern = `${prefix}*`;
    const h = harness([pattern]);
    const dry = await h.run('deleteRedisKeys', { pattern, maxKeys: 10_000, dryRun: true, batchSize: 100 });
    expect(dry).toEqual({ pattern, dryRun: true, wouldDelete: 700, matching: 700, capped: false, batches: 7 });
    const cappedDry = await h.run('deleteRedisKeys', { pattern, maxKeys: 300, dryRun: true, batchSize: 100 });
    expect(cappedDry).toEqual({ pattern, dryRun: true, wouldDelete: 300, matching: 700, capped: true, batches: 3 });
    expect(await countKeys(pattern)).toBe(700);
  });

  test('the cap bounds the keys deleted; later runs take the rest, then report no change', async () => {
    const prefix = uniquePrefix();
    await fill(prefix, 300);
    const pattern = `${prefix}*`;
    const h = harness([pattern]);
    const first = await h.run('deleteRedisKeys', { pattern, maxKeys: 100, scanCount: 1000 });
    expect(first).toMatchObject({ deleted: 100, capped: true });
    expect(await countKeys(pattern)).toBe(200);

    const rest = await harness([pattern]).run('deleteRedisKeys', { pattern, maxKeys: 1000 });
    expect(rest).toMatchObject({ deleted: 200, capped: false });
    expect(await countKeys(pattern)).toBe(0);

    const none = await harness([pattern]).run('deleteRedisKeys', { pattern, maxKeys: 1000 });
    expect(none).toMatchObject({ deleted: 0, capped: false });
  });

  test('refuses `*`, patterns outside the allowlist and nonsense limits, and touches nothing', async () => {
    const prefix = uniquePrefix();
    await fill(prefix, 50);
    const pattern = `${prefix}*`;
    const h = harness([pattern]);
    for (const refusedPattern of ['*', '**', '?*', `${prefix}1*`, 'user:*']) {
      const err = await failureOf(h.run('deleteRedisKeys', { pattern: refusedPattern, maxKeys: 10 }));
      expect(err.type).toBe('Refused');
      expect(err.nonRetryable).toBe(true);
    }
    for (const input of [
      { pattern, maxKeys: 0 },
      { pattern, maxKeys: -5 },
      { pattern, maxKeys: 1.5 },
      { pattern, maxKeys: 10, batchSize: 0 },
      { pattern, maxKeys: 10, scanCount: -1 },
      { pattern: '', maxKeys: 10 },
    ]) {
      expect((await failureOf(h.run('deleteRedisKeys', input))).type).toBe('InvalidInput');
    }
    expect(await countKeys(pattern)).toBe(50);
  });

  test('a retried attempt resumes from the heartbeat: pages before the cursor are not scanned again, totals carry on', async () => {
    const prefix = uniquePrefix();
    const pattern = `${prefix}*`;
    await fill(prefix, 3000);
    // Non-matching ballast keeps the hash table from shrinking while the test deletes, so SCAN
    // cursors stay exact (no rehash to revisit buckets).
    await fill(`ballast-${prefix}`, 3000);

    // What a previous attempt would have done: scanned the first page (and, we pretend, deleted
    // 777 keys in all over 9 UNLINK batches), then heartbeated the cursor after that page.
    const [cursor, firstPage] = await raw.scan('0', 'MATCH', pattern, 'COUNT', 400);
    expect(cursor).not.toBe('0');
    expect(firstPage.length).toBeGreaterThan(0);
    const details: DeleteRedisKeysProgress = { pattern, cursor, deleted: 777, batches: 9, done: false, capped: false };

    const h = harness([pattern], details);
    const result = await h.run('deleteRedisKeys', { pattern, maxKeys: 100_000, scanCount: 400, batchSize: 250 });
    const firstPageLeft = (await raw.exists(...firstPage)) as number;
    // The first page was not revisited: its keys are all still there, the rest are gone.
    expect(firstPageLeft).toBe(firstPage.length);
    expect(await countKeys(pattern)).toBe(firstPage.length);
    expect(result).toMatchObject({ pattern, deleted: 777 + (3000 - firstPage.length), capped: false, resumedFrom: { cursor, deleted: 777 } });
    expect(result.batches).toBeGreaterThan(9);
    expect(await countKeys(`ballast-${prefix}*`)).toBe(3000);
  });

  test('a killed attempt that removed more than its last heartbeat says: the retry counts every key exactly', async () => {
    const prefix = uniquePrefix();
    const pattern = `${prefix}*`;
    await fill(prefix, 3000);
    // The first attempt runs to the end, but the server only ever got its first heartbeat (a
    // crash before the throttled heartbeats were sent, or before the completion was recorded).
    const first = harness([pattern]);
    await first.run('deleteRedisKeys', { pattern, maxKeys: 100_000, scanCount: 400, batchSize: 250 });
    expect(await countKeys(pattern)).toBe(0);
    const firstHeartbeat = first.heartbeats[0] as DeleteRedisKeysProgress;
    expect(firstHeartbeat.deleted).toBeLessThan(3000);

    const retry = harness([pattern], firstHeartbeat, { REDIS_URL: redisUrl }, { attempt: 2 });
    const result = await retry.run('deleteRedisKeys', { pattern, maxKeys: 100_000, scanCount: 400, batchSize: 250 });
    expect(result).toMatchObject({ pattern, deleted: 3000, capped: false, resumedFrom: { cursor: firstHeartbeat.cursor, deleted: 3000 } });
    // The tally is the activity's own key: it is never counted or removed as one of the pattern's.
    expect(await countKeys(pattern)).toBe(0);
  });

  test('the cap counts the keys of earlier attempts', async () => {
    const prefix = uniquePrefix();
    const pattern = `${prefix}*`;
    await fill(prefix, 200);
    const h = harness([pattern], { pattern, cursor: '0', deleted: 150, batches: 2, done: false, capped: false } satisfies DeleteRedisKeysProgress);
    const result = await h.run('deleteRedisKeys', { pattern, maxKeys: 180 });
    expect(result).toMatchObject({ deleted: 180, capped: true });
    expect(await countKeys(pattern)).toBe(170);
  });

  test('an attempt whose previous attempt finished only reports (no new scan); heartbeats of another pattern are ignored', async () => {
    const prefix = uniquePrefix();
    const pattern = `${prefix}*`;
    await fill(prefix, 40);
    const finished = harness([pattern], { pattern, cursor: '0', deleted: 42, batches: 1, done: true, capped: false } satisfies DeleteRedisKeysProgress);
    expect(await finished.run('deleteRedisKeys', { pattern, maxKeys: 100 })).toMatchObject({ deleted: 42, capped: false, batches: 1 });
    expect(await countKeys(pattern)).toBe(40);

    const foreign = harness([pattern], { pattern: 'session:other:*', cursor: '12345', deleted: 5, batches: 1, done: true, capped: false });
    const result = await foreign.run('deleteRedisKeys', { pattern, maxKeys: 100 });
    expect(result).toMatchObject({ deleted: 40, capped: false });
    expect(result.resumedFrom).toBeUndefined();
    expect(await countKeys(pattern)).toBe(0);
  });

  test('cancellation stops between pages; the last heartbeat says how far it got', async () => {
    const prefix = uniquePrefix();
    const pattern = `${prefix}*`;
    await fill(prefix, 3000);
    const h = harness([pattern]);
    h.environment.once('heartbeat', () => h.environment.cancel());
    const err = await h.run('deleteRedisKeys', { pattern, maxKeys: 100_000, scanCount: 100, batchSize: 50 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CancelledFailure);
    const last = h.heartbeats[h.heartbeats.length - 1] as DeleteRedisKeysProgress;
    expect(last.done).toBe(false);
    expect(last.deleted).toBeGreaterThan(0);
    const left = await countKeys(pattern);
    expect(left).toBeGreaterThan(0);
    expect(left).toBe(3000 - last.deleted);

    // The retry from that heartbeat finishes the job.
    const retry = harness([pattern], last);
    expect(await retry.run('deleteRedisKeys', { pattern, maxKeys: 100_000 })).toMatchObject({ deleted: 3000, capped: false });
    expect(await countKeys(pattern)).toBe(0);
  });
});

describe('countRedisKeysWithoutTtl', () => {
  test('counts the matching keys without a TTL exactly when the scan completes (SCAN + pipelined TTL); keys with a TTL and other patterns do not count', async () => {
    const prefix = uniquePrefix();
    const other = uniquePrefix();
    await fill(prefix, 1200);
    await fillWithTtl(prefix, 300, 3600, 1200);
    await fill(other, 250);
    const h = harness([]);
    const result = await h.run('countRedisKeysWithoutTtl', { pattern: `${prefix}*`, scanCount: 100 });
    expect(result).toMatchObject({ pattern: `${prefix}*`, checked: 1500, withoutTtl: 1200, complete: true });
    expect(result.scans).toBeGreaterThan(1);
    expect(await h.run('countRedisKeysWithoutTtl', { pattern: `${prefix}nothing-*` })).toMatchObject({ checked: 0, withoutTtl: 0, complete: true });
    // Read-only: nothing got a TTL.
    expect(await countWithoutTtl(`${prefix}*`)).toBe(1200);
    expect(await countWithoutTtl(`${other}*`)).toBe(250);
  });

  test('large: stops after sampleSize keys checked (a sample, complete false) whose share without a TTL is about the whole one', async () => {
    const prefix = uniquePrefix();
    // Every 4th key has a TTL: 75% without, in any sample of SCAN order.
    const pipeline = raw.pipeline();
    for (let i = 0; i < 4000; i++) {
      if (i % 4 === 0) pipeline.set(`${prefix}${i}`, 'v', 'EX', 3600);
      else pipeline.set(`${prefix}${i}`, 'v');
    }
    await pipeline.exec();
    const h = harness([]);
    const sample = await h.run('countRedisKeysWithoutTtl', { pattern: `${prefix}*`, sampleSize: 500, scanCount: 100 });
    expect(sample.complete).toBe(false);
    expect(sample.checked).toBeGreaterThanOrEqual(500);
    expect(sample.checked).toBeLessThan(4000);
    expect(sample.withoutTtl / sample.checked).toBeGreaterThan(0.6);
    expect(sample.withoutTtl / sample.checked).toBeLessThan(0.9);
  });

  test('a retried count resumes from its heartbeat: cursor, checked and found carry on', async () => {
    const prefix = uniquePrefix();
    const pattern = `${prefix}*`;
    await fill(prefix, 2000);
    const [cursor, firstPage] = await raw.scan('0', 'MATCH', pattern, 'COUNT', 300);
    expect(cursor).not.toBe('0');
    const h = harness([], { countPattern: pattern, cursor, count: 10_000, scans: 1, found: 7 });
    const result = await h.run('countRedisKeysWithoutTtl', { pattern, scanCount: 300, sampleSize: 1_000_000 });
    expect(result).toMatchObject({ checked: 10_000 + 2000 - firstPage.length, withoutTtl: 7 + 2000 - firstPage.length, complete: true });
  });

  test('bad input: empty pattern, nonsense sampleSize', async () => {
    const h = harness([]);
    expect((await failureOf(h.run('countRedisKeysWithoutTtl', { pattern: '' }))).type).toBe('InvalidInput');
    for (const sampleSize of [0, -1, 2.5]) expect((await failureOf(h.run('countRedisKeysWithoutTtl', { pattern: 'session:*', sampleSize }))).type).toBe('InvalidInput');
  });
});

describe('expireRedisKeys', () => {
  test('gives the keys without a TTL the TTL, in EXPIRE batches; keys with a TTL keep theirs; other patterns untouched; a second run sets nothing', async () => {
    const prefix = uniquePrefix();
    const other = uniquePrefix();
    await fill(prefix, 2500);
    await fillWithTtl(prefix, 200, 100_000, 2500);
    await fill(other, 500);
    const pattern = `${prefix}*`;
    const kept = await ttlsOf(pattern);
    const h = harness([pattern]);

    const callsOf = async (command: string) => Number(/calls=(\d+)/.exec(parseInfo(await raw.info('commandstats'))[`cmdstat_${command}`] ?? '')?.[1] ?? 0);
    const forbidden = ['keys', 'flushdb', 'flushall', 'unlink', 'del'];
    const forbiddenBefore = await Promise.all(forbidden.map(callsOf));
    const expiresBefore = await callsOf('expire');
    const result = await h.run('expireRedisKeys', { pattern, ttlSeconds: 3600, maxKeys: 10_000, scanCount: 200, batchSize: 100 });
    expect(result).toMatchObject({ pattern, ttlSeconds: 3600, dryRun: false, expired: 2500, capped: false });
    expect(result.resumedFrom).toBeUndefined();
    expect(result.batches).toBeGreaterThanOrEqual(25);
    // Server-side proof: EXPIRE only for the keys without a TTL (not for those that had one), nothing deleted, no KEYS.
    expect(await Promise.all(forbidden.map(callsOf))).toEqual(forbiddenBefore);
    expect((await callsOf('expire')) - expiresBefore).toBe(2500);

    const after = await ttlsOf(pattern);
    expect(after.size).toBe(2700);
    for (const [key, ttl] of after) {
      if (kept.get(key) === -1) {
        expect(ttl).toBeGreaterThan(3500);
        expect(ttl).toBeLessThanOrEqual(3600);
      } else expect(ttl).toBeGreaterThan(99_000); // its own TTL, not shortened to 3600
    }
    expect(await countWithoutTtl(`${other}*`)).toBe(500);

    const progress = h.heartbeats as ExpireRedisKeysProgress[];
    expect(progress.length).toBeGreaterThan(2);
    expect(progress[progress.length - 1]).toMatchObject({ pattern, expired: 2500, done: true, capped: false });

    const second = await harness([pattern]).run('expireRedisKeys', { pattern, ttlSeconds: 3600, maxKeys: 10_000 });
    expect(second).toMatchObject({ pattern, expired: 0, capped: false, batches: 0 });
  });

  test('dry run counts the keys without a TTL and changes nothing; it stops counting past the cap', async () => {
    const prefix = uniquePrefix();
    await fill(prefix, 700);
    await fillWithTtl(prefix, 100, 3600, 700);
    const pattern = `${prefix}*`;
    const h = harness([pattern]);
    expect(await h.run('expireRedisKeys', { pattern, ttlSeconds: 3600, maxKeys: 10_000, dryRun: true, batchSize: 100 })).toEqual({
      pattern,
      ttlSeconds: 3600,
      dryRun: true,
      wouldExpire: 700,
      withoutTtl: 700,
      capped: false,
      batches: 7,
    });
    const capped = await h.run('expireRedisKeys', { pattern, ttlSeconds: 3600, maxKeys: 300, dryRun: true, batchSize: 100, scanCount: 100 });
    expect(capped).toMatchObject({ wouldExpire: 300, capped: true, batches: 3 });
    expect(capped.withoutTtl).toBeGreaterThan(300);
    expect(await countWithoutTtl(pattern)).toBe(700);
  });

  test('the cap bounds the keys given a TTL; later runs take the rest', async () => {
    const prefix = uniquePrefix();
    await fill(prefix, 300);
    const pattern = `${prefix}*`;
    const first = await harness([pattern]).run('expireRedisKeys', { pattern, ttlSeconds: 3600, maxKeys: 100, scanCount: 1000 });
    expect(first).toMatchObject({ expired: 100, capped: true });
    expect(await countWithoutTtl(pattern)).toBe(200);
    const rest = await harness([pattern]).run('expireRedisKeys', { pattern, ttlSeconds: 3600, maxKeys: 1000 });
    expect(rest).toMatchObject({ expired: 200, capped: false });
    expect(await countWithoutTtl(pattern)).toBe(0);
    expect(await countKeys(pattern)).toBe(300);
  });

  test('attack: `*`, patterns outside the allowlist, a TTL of 0, negative, under a minute, huge or not a number: a clear non-retryable error, and nothing gets a TTL', async () => {
    const prefix = uniquePrefix();
    await fill(prefix, 50);
    const pattern = `${prefix}*`;
    const h = harness([pattern]);
    const expiresBefore = Number(/calls=(\d+)/.exec(parseInfo(await raw.info('commandstats')).cmdstat_expire ?? '')?.[1] ?? 0);
    for (const refusedPattern of ['*', '**', '?*', `${prefix}1*`, 'user:*', 'runbook-automation:*']) {
      const err = await failureOf(h.run('expireRedisKeys', { pattern: refusedPattern, ttlSeconds: 3600, maxKeys: 10 }));
      expect([err.type, err.nonRetryable]).toEqual(['Refused', true]);
      expect(err.message).toMatch(/would match every key|is not in the allowlist/);
    }
    for (const ttlSeconds of [0, -1, -3600, 1, 59, 2_592_001, 1e12, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '3600', null, undefined]) {
      const err = await failureOf(h.run('expireRedisKeys', { pattern, ttlSeconds: ttlSeconds as number, maxKeys: 10 }));
      expect([err.type, err.nonRetryable]).toEqual(['InvalidInput', true]);
      expect(err.message).toMatch(/^ttlSeconds .*: expected whole seconds from 60 \(1 minute\) to 2592000 \(30 days\)/);
    }
    for (const input of [
      { pattern, ttlSeconds: 3600, maxKeys: 0 },
      { pattern, ttlSeconds: 3600, maxKeys: -5 },
      { pattern, ttlSeconds: 3600, maxKeys: 10, batchSize: 0 },
      { pattern: '', ttlSeconds: 3600, maxKeys: 10 },
    ]) {
      expect((await failureOf(h.run('expireRedisKeys', input))).type).toBe('InvalidInput');
    }
    expect(await countWithoutTtl(pattern)).toBe(50);
    expect(Number(/calls=(\d+)/.exec(parseInfo(await raw.info('commandstats')).cmdstat_expire ?? '')?.[1] ?? 0)).toBe(expiresBefore);
  });

  test('a killed attempt that set more than its last heartbeat says: the retry counts every key exactly and re-sets no TTL', async () => {
    const prefix = uniquePrefix();
    const pattern = `${prefix}*`;
    await fill(prefix, 3000);
    // The first attempt runs to the end, but the server only ever got its first heartbeat.
    const first = harness([pattern]);
    await first.run('expireRedisKeys', { pattern, ttlSeconds: 3600, maxKeys: 100_000, scanCount: 400, batchSize: 250 });
    expect(await countWithoutTtl(pattern)).toBe(0);
    const firstHeartbeat = first.heartbeats[0] as ExpireRedisKeysProgress;
    expect(firstHeartbeat.expired).toBeLessThan(3000);
    const expiryTimes = async () => {
      const keys = [...(await ttlsOf(pattern)).keys()].sort();
      const pipeline = raw.pipeline();
      for (const key of keys) pipeline.call('EXPIRETIME', key);
      return ((await pipeline.exec()) ?? []).map(([, t]) => t as number);
    };
    const expiresAt = await expiryTimes();

    // The retry (same activity, its heartbeat): it finds the later pages' keys with a TTL and sets none again,
    // whatever TTL it asks (here a different one, to make a re-set visible).
    const retry = harness([pattern], firstHeartbeat, {}, { attempt: 2 });
    const result = await retry.run('expireRedisKeys', { pattern, ttlSeconds: 7200, maxKeys: 100_000, scanCount: 400, batchSize: 250 });
    expect(result).toMatchObject({ pattern, expired: 3000, capped: false, resumedFrom: { cursor: firstHeartbeat.cursor, expired: 3000 } });
    expect(await expiryTimes()).toEqual(expiresAt);
    // The tally is the activity's own key: never counted, never given a TTL as one of the pattern's.
    expect(await countKeys(pattern)).toBe(3000);
  });

  test('the cap counts the keys of earlier attempts', async () => {
    const prefix = uniquePrefix();
    const pattern = `${prefix}*`;
    await fill(prefix, 200);
    const h = harness([pattern], { pattern, cursor: '0', expired: 150, batches: 2, done: false, capped: false } satisfies ExpireRedisKeysProgress);
    const result = await h.run('expireRedisKeys', { pattern, ttlSeconds: 3600, maxKeys: 180 });
    expect(result).toMatchObject({ expired: 180, capped: true });
    expect(await countWithoutTtl(pattern)).toBe(170);
  });

  test('a delete heartbeat does not resume a TTL pass (each pass reads only its own progress)', async () => {
    const prefix = uniquePrefix();
    const pattern = `${prefix}*`;
    await fill(prefix, 40);
    const h = harness([pattern], { pattern, cursor: '0', deleted: 42, batches: 1, done: true, capped: false } satisfies DeleteRedisKeysProgress);
    const result = await h.run('expireRedisKeys', { pattern, ttlSeconds: 3600, maxKeys: 100 });
    expect(result).toMatchObject({ expired: 40, capped: false });
    expect(result.resumedFrom).toBeUndefined();
    expect(await countWithoutTtl(pattern)).toBe(0);
  });

  test('cancellation stops between pages; the retry from the last heartbeat finishes', async () => {
    const prefix = uniquePrefix();
    const pattern = `${prefix}*`;
    await fill(prefix, 3000);
    const h = harness([pattern]);
    h.environment.once('heartbeat', () => h.environment.cancel());
    const err = await h.run('expireRedisKeys', { pattern, ttlSeconds: 3600, maxKeys: 100_000, scanCount: 100, batchSize: 50 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CancelledFailure);
    const last = h.heartbeats[h.heartbeats.length - 1] as ExpireRedisKeysProgress;
    expect(last.done).toBe(false);
    expect(last.expired).toBeGreaterThan(0);
    expect(await countWithoutTtl(pattern)).toBe(3000 - last.expired);

    const retry = harness([pattern], last);
    expect(await retry.run('expireRedisKeys', { pattern, ttlSeconds: 3600, maxKeys: 100_000 })).toMatchObject({ expired: 3000, capped: false });
    expect(await countWithoutTtl(pattern)).toBe(0);
  });
});
