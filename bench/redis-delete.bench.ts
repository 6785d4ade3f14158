import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { MockActivityEnvironment } from '@temporalio/testing';
import Redis from 'ioredis';
import { createRedisActivities, parseInfo, type DeleteRedisKeysInput, type DeleteRedisKeysResult } from '../activities/redis';
import { readTestbedEnv } from '../scripts/testbed';

/**
 * `npm run bench -- redis`: deleting 1,000,000 `session:*` keys next to 1,000,000 other keys with
 * our deleteRedisKeys activity (SCAN + pipelined UNLINK batches) against the manual's
 * `redis-cli --scan --pattern 'session:*' | xargs redis-cli del`, on the test bed's Redis.
 *
 * Runs in logical database 15, which must be empty at the start (so everything in it is the
 * bench's own); removes what it created with SCAN + UNLINK at the end, also on failure.
 */
const benchDb = 15;
const sessionKeys = 1_000_000;
const otherKeys = 1_000_000;
const msetKeys = 1000; // keys per MSET
const msetsPerPipeline = 100;
/** deleteRedisKeys' default SCAN COUNT (activities/redis.ts), for the ceiling pass. */
const defaultScanCount = 5000;

function url(base: string): string {
  return base.replace(/\/\d*$/, `/${benchDb}`);
}

async function fill(redis: Redis, prefix: string, count: number): Promise<void> {
  for (let at = 0; at < count; at += msetKeys * msetsPerPipeline) {
    const pipeline = redis.pipeline();
    for (let m = at; m < Math.min(count, at + msetKeys * msetsPerPipeline); m += msetKeys) {
      const args: string[] = [];
      for (let i = m; i < Math.min(count, m + msetKeys); i++) args.push(`${prefix}${i}`, 'v');
      pipeline.mset(...args);
    }
    const results = await pipeline.exec();
    const failed = results?.find(([err]) => err);
    if (failed) throw failed[0];
  }
}

async function scanCount(redis: Redis, pattern: string): Promise<number> {
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await redis.scanBuffer(cursor, 'MATCH', pattern, 'COUNT', 10_000);
    n += keys.length;
    cursor = next.toString();
  } while (cursor !== '0');
  return n;
}

async function unlinkMatching(redis: Redis, pattern: string, count = 10_000): Promise<number> {
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await redis.scanBuffer(cursor, 'MATCH', pattern, 'COUNT', count);
    for (let at = 0; at < keys.length; at += 1000) n += await redis.unlink(...keys.slice(at, at + 1000));
    cursor = next.toString();
  } while (cursor !== '0');
  return n;
}

function rate(keys: number, ms: number): string {
  return `${Math.round(keys / (ms / 1000)).toLocaleString('en-US')} keys/s`;
}

async function memoryLine(redis: Redis): Promise<string> {
  const m = parseInfo(await redis.info('memory'));
  return `used_memory ${m.used_memory_human}, maxmemory ${m.maxmemory_human}, policy ${m.maxmemory_policy}`;
}

/** Server-side time per command (INFO commandstats, read-only), to see where the time goes. */
async function commandUsec(redis: Redis): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [name, value] of Object.entries(parseInfo(await redis.info('commandstats')))) {
    const usec = /usec=(\d+)/.exec(value);
    if (usec) out[name.replace(/^cmdstat_/, '')] = Number(usec[1]);
  }
  return out;
}

function serverTime(before: Record<string, number>, after: Record<string, number>, commands: string[]): Record<string, number> {
  return Object.fromEntries(commands.map((c) => [c, Math.round(((after[c] ?? 0) - (before[c] ?? 0)) / 1000)]));
}

async function evictedKeys(redis: Redis): Promise<number> {
  return Number(parseInfo(await redis.info('stats')).evicted_keys);
}

export default async function redisDeleteBench(): Promise<void> {
  const env = readTestbedEnv();
  if (!env.REDIS_URL || !env.TESTBED_REDIS_ADMIN_URL || !env.TESTBED_REDIS_PASSWORD) throw new Error('no test bed: run `npm run testbed -- up` first');
  const port = new URL(env.REDIS_URL).port;
  // The bench's own work (filling, counting, INFO, the ceiling pass) as admin; the activity as the worker's Redis user.
  const redis = new Redis(url(env.TESTBED_REDIS_ADMIN_URL), { connectTimeout: 5000, maxRetriesPerRequest: 2 });
  const run = randomUUID().slice(0, 8);
  const otherPrefix = `bench-other:${run}:`;
  const sessionPrefix = `session:bench-${run}:`;
  const pattern = 'session:*';
  let created = false;
  try {
    const existing = await redis.dbsize();
    if (existing !== 0) throw new Error(`Redis db ${benchDb} holds ${existing} keys: the bench only runs on an empty db ${benchDb} (it deletes every session:* key there)`);
    console.log(
      `machine: ${cpus().length} CPUs, load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}; Redis db ${benchDb} on port ${port}`,
    );
    console.log(`before: ${await memoryLine(redis)}`);
    const evictedBefore = await evictedKeys(redis);

    created = true;
    const t0 = Date.now();
    await fill(redis, otherPrefix, otherKeys);
    await fill(redis, sessionPrefix, sessionKeys);
    console.log(`filled ${(otherKeys + sessionKeys).toLocaleString('en-US')} keys in ${Date.now() - t0} ms (${await memoryLine(redis)})`);

    // Ours: the activity as the worker runs it (its Redis user, a client built like workers/dependencies.ts), in an activity context.
    const activityClient = new Redis(url(env.REDIS_URL), { lazyConnect: true, connectTimeout: 5000, maxRetriesPerRequest: 2 });
    const activities = createRedisActivities({ redis: activityClient, allowedKeyPatterns: [pattern] });
    const runOurs = async (options: Omit<DeleteRedisKeysInput, 'pattern' | 'maxKeys'>) => {
      await activityClient.ping(); // connect outside the timing
      const environment = new MockActivityEnvironment();
      let heartbeats = 0;
      environment.on('heartbeat', () => heartbeats++);
      const usecBefore = await commandUsec(redis);
      const start = process.hrtime.bigint();
      const result = (await environment.run(activities.deleteRedisKeys, { pattern, maxKeys: 10_000_000, ...options })) as DeleteRedisKeysResult;
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      if (result.deleted !== sessionKeys) throw new Error(`ours deleted ${result.deleted}, expected ${sessionKeys}`);
      return { ms, batches: result.batches, heartbeats, server: serverTime(usecBefore, await commandUsec(redis), ['scan', 'unlink', 'eval']) };
    };

    // A small sweep of SCAN COUNT / UNLINK batch size (refilling between runs), then the default.
    const settings: Array<Omit<DeleteRedisKeysInput, 'pattern' | 'maxKeys'>> = [
      { scanCount: 1000, batchSize: 1000 },
      { scanCount: 20_000, batchSize: 1000 },
      { scanCount: 20_000, batchSize: 5000 },
      {}, // the activity's defaults
    ];
    let ours = { ms: 0, batches: 0, heartbeats: 0, server: {} as Record<string, number> };
    for (const [index, options] of settings.entries()) {
      if (index > 0) await fill(redis, sessionPrefix, sessionKeys);
      const measured = await runOurs(options);
      const label = Object.keys(options).length ? `scanCount ${options.scanCount}, batchSize ${options.batchSize}` : 'defaults (scanCount 5000, batchSize 1000)';
      console.log(
        `ours [${label}]: ${sessionKeys.toLocaleString('en-US')} keys in ${measured.ms.toFixed(0)} ms = ${rate(sessionKeys, measured.ms)} (${measured.batches} UNLINKs, ${measured.heartbeats} heartbeats; Redis busy ${measured.server.scan} ms in SCAN, ${measured.server.unlink} ms in UNLINK)`,
      );
      if (await scanCount(redis, pattern)) throw new Error('ours left session keys behind');
      ours = measured;
    }
    activityClient.disconnect();
    const othersAfterOurs = await scanCount(redis, `${otherPrefix}*`);

    // Redis' own ceiling: the server's time (INFO commandstats usec, as deltas: nothing reset) in the
    // SCAN and UNLINK a delete of these keys needs, from a bare client (SCAN, then UNLINK of the page
    // in 1,000-key batches, nothing else). No client can delete faster than Redis executes those.
    await fill(redis, sessionPrefix, sessionKeys);
    const ceilingUsecBefore = await commandUsec(redis);
    const ceilingStart = process.hrtime.bigint();
    const ceilingDeleted = await unlinkMatching(redis, pattern, defaultScanCount);
    const ceilingWallMs = Number(process.hrtime.bigint() - ceilingStart) / 1e6;
    if (ceilingDeleted !== sessionKeys) throw new Error(`the ceiling pass deleted ${ceilingDeleted}, expected ${sessionKeys}`);
    const ceilingServer = serverTime(ceilingUsecBefore, await commandUsec(redis), ['scan', 'unlink']);
    const ceilingMs = ceilingServer.scan! + ceilingServer.unlink!;
    console.log(
      `Redis' own time [SCAN COUNT ${defaultScanCount} + UNLINK 1,000-key batches, a bare client]: ${ceilingServer.scan} ms in SCAN + ${ceilingServer.unlink} ms in UNLINK = ${ceilingMs} ms for ${sessionKeys.toLocaleString('en-US')} keys: ceiling ${rate(sessionKeys, ceilingMs)} (that client's wall time ${ceilingWallMs.toFixed(0)} ms = ${rate(sessionKeys, ceilingWallMs)})`,
    );

    // Baseline: the manual's command, as written, against the same data.
    await fill(redis, sessionPrefix, sessionKeys);
    const cli = `redis-cli -a "$BENCH_REDIS_PASSWORD" --no-auth-warning -p ${port} -n ${benchDb}`;
    const baselineUsecBefore = await commandUsec(redis);
    const start = process.hrtime.bigint();
    const baseline = spawnSync('bash', ['-c', `set -o pipefail; ${cli} --scan --pattern '${pattern}' | xargs ${cli} del > /dev/null`], {
      env: { ...process.env, BENCH_REDIS_PASSWORD: env.TESTBED_REDIS_PASSWORD },
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 8 * 60_000,
    });
    const baselineMs = Number(process.hrtime.bigint() - start) / 1e6;
    if (baseline.status !== 0) throw new Error(`baseline failed (${baseline.status ?? baseline.signal}): ${String(baseline.stderr).slice(-500)}`);
    const baselineServer = serverTime(baselineUsecBefore, await commandUsec(redis), ['scan', 'del']);
    const leftByBaseline = await scanCount(redis, pattern);
    console.log(
      `baseline [redis-cli --scan | xargs redis-cli del]: ${sessionKeys.toLocaleString('en-US')} keys in ${baselineMs.toFixed(0)} ms = ${rate(sessionKeys, baselineMs)}${leftByBaseline ? ` (left ${leftByBaseline} behind)` : ''}; Redis busy ${baselineServer.scan} ms in SCAN, ${baselineServer.del} ms in DEL`,
    );

    const othersLeft = await scanCount(redis, `${otherPrefix}*`);
    const evicted = (await evictedKeys(redis)) - evictedBefore;
    const oursRate = sessionKeys / (ours.ms / 1000);
    const baselineRate = sessionKeys / (baselineMs / 1000);
    const ceilingRate = sessionKeys / (ceilingMs / 1000);
    console.log('');
    console.log(
      `ours (defaults): ${rate(sessionKeys, ours.ms)} = ${((100 * oursRate) / ceilingRate).toFixed(0)} % of the ceiling (goal >= 90 %: ${oursRate >= 0.9 * ceilingRate ? 'met' : 'NOT met'}; goal >= 150,000 keys/s: ${oursRate >= 150_000 ? 'met' : 'NOT met'})`,
    );
    console.log(`baseline:        ${rate(sessionKeys, baselineMs)} (redis-cli --scan | xargs redis-cli del); ours is ${(oursRate / baselineRate).toFixed(1)}x`);
    console.log(`ceiling:         ${rate(sessionKeys, ceilingMs)} (Redis' own time in SCAN + UNLINK)`);
    console.log(
      `ours kept Redis busy ${ours.server.scan} ms in SCAN + ${ours.server.unlink} ms in UNLINK (+ ${ours.server.eval} ms in EVAL, the tallying script around the UNLINKs) of its ${ours.ms.toFixed(0)} ms`,
    );
    console.log(
      `other keys: ${othersAfterOurs.toLocaleString('en-US')} after ours, ${othersLeft.toLocaleString('en-US')} of ${otherKeys.toLocaleString('en-US')} at the end${othersLeft === otherKeys ? ' (all survived)' : ' (SOME LOST)'}; evicted during the bench: ${evicted}`,
    );
    console.log(
      `load average after: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
    if (othersLeft !== otherKeys || othersAfterOurs !== otherKeys) throw new Error('other keys did not survive');
  } finally {
    if (created) {
      // The activity's tallies (one per run) go too, so db 15 is empty for the next bench.
      const removed = (await unlinkMatching(redis, `${otherPrefix}*`)) + (await unlinkMatching(redis, `${sessionPrefix}*`)) + (await unlinkMatching(redis, 'runbook-automation:unlinked:*'));
      console.log(`cleanup: unlinked ${removed.toLocaleString('en-US')} bench keys; db ${benchDb} now holds ${await redis.dbsize()} keys`);
    }
    redis.disconnect();
  }
}
