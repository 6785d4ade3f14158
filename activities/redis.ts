import { createHash } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { throwIfCancelled } from './cancellation';
import type Redis from 'ioredis';
import type { PreflightRow } from '../common/preflight';
import { callsTo, failure, invalidInput } from './errors';
import { assertRedisPatternAllowed } from './guards';
import { excessOutcome, notConfigured, runChecks } from './preflight-checks';
import { validateInt } from './input-checks';
import { keyTtlBounds } from '../common/inputs/redis-memory-pressure';

const inRedis = callsTo('Redis');

export interface RedisDeps {
  /** Absent when no Redis is configured. */
  redis?: Redis;
  allowedKeyPatterns: string[];
}

/** Picks `field:value` lines out of an INFO section. */
export function parseInfo(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at > 0 && !line.startsWith('#')) fields[line.slice(0, at)] = line.slice(at + 1);
  }
  return fields;
}

/** The eviction policies Redis 7 accepts for `maxmemory-policy`. */
export const maxmemoryPolicies = ['noeviction', 'allkeys-lru', 'allkeys-lfu', 'allkeys-random', 'volatile-lru', 'volatile-lfu', 'volatile-random', 'volatile-ttl'] as const;
export type MaxmemoryPolicy = (typeof maxmemoryPolicies)[number];

export interface RedisMemoryInfo {
  usedMemory: number;
  usedMemoryPeak: number;
  /** 0 means no limit. */
  maxmemory: number;
  maxmemoryPolicy: string;
  memFragmentationRatio: number;
  /** usedMemory / maxmemory, or null without a limit. */
  usedMemoryRatio: number | null;
  /** Keys in the connection's logical database (DBSIZE). */
  dbsize: number;
}

export interface SetMaxmemoryPolicyInput {
  policy: string;
  dryRun?: boolean;
}

export interface SetMaxmemoryPolicyResult {
  before: string;
  after: string;
  changed: boolean;
  dryRun: boolean;
}

export interface SetMaxmemoryInput {
  /** The new `maxmemory` in bytes: a positive whole number (0, "no limit", is refused). */
  bytes: number;
  dryRun?: boolean;
}

export interface SetMaxmemoryResult {
  /** Bytes; 0 means Redis had no maxmemory. */
  before: number;
  after: number;
  changed: boolean;
  dryRun: boolean;
}

export interface CountRedisKeysInput {
  pattern: string;
  /** SCAN COUNT hint per round trip; default 5000. */
  scanCount?: number;
}

export interface CountRedisKeysResult {
  pattern: string;
  count: number;
  scans: number;
}

export interface DeleteRedisKeysInput {
  pattern: string;
  /** At most this many keys are deleted by the activity (over all attempts). */
  maxKeys: number;
  /** Count only; nothing is deleted. */
  dryRun?: boolean;
  /** SCAN COUNT hint per round trip; default 5000. */
  scanCount?: number;
  /** Keys per UNLINK command; default 1000. */
  batchSize?: number;
}

export interface DeleteRedisKeysResult {
  pattern: string;
  dryRun: boolean;
  /** Keys removed (execute), over every attempt of this activity. */
  deleted?: number;
  /** Keys a run would remove (dry run): min(matching, maxKeys). */
  wouldDelete?: number;
  /** Dry run only: every key matching now. */
  matching?: number;
  /** Stopped at maxKeys with keys possibly left (execute), or more keys match than maxKeys (dry run). */
  capped: boolean;
  /** UNLINK commands sent (execute, over every attempt) or that a run would send (dry run). */
  batches: number;
  /** Set when this attempt continued from a previous attempt's heartbeat. */
  resumedFrom?: { cursor: string; deleted: number };
}

/** What the delete heartbeats: every key on SCAN pages before `cursor` has been unlinked. */
export interface DeleteRedisKeysProgress {
  pattern: string;
  cursor: string;
  deleted: number;
  batches: number;
  /** The scan reached its end or the cap: a retry only reports. */
  done: boolean;
  capped: boolean;
}

export interface CountRedisKeysWithoutTtlInput {
  pattern: string;
  /** Keys checked for a TTL (pipelined TTL per SCAN page); the scan stops after the page that reaches it. Default 10000. */
  sampleSize?: number;
  /** SCAN COUNT hint per round trip; default 5000. */
  scanCount?: number;
}

export interface CountRedisKeysWithoutTtlResult {
  pattern: string;
  /** Matching keys whose TTL was checked. */
  checked: number;
  /** Of those, keys without a TTL (TTL -1). */
  withoutTtl: number;
  /** The whole keyspace was scanned: the counts are exact, not a sample. */
  complete: boolean;
  scans: number;
}

export interface ExpireRedisKeysInput {
  pattern: string;
  /** The TTL set on keys that have none, in seconds (60 to 30 days). */
  ttlSeconds: number;
  /** At most this many keys are given a TTL by the activity (over all attempts). */
  maxKeys: number;
  /** Count only; nothing is changed. */
  dryRun?: boolean;
  /** SCAN COUNT hint per round trip; default 5000. */
  scanCount?: number;
  /** Keys per EXPIRE script; default 1000. */
  batchSize?: number;
}

export interface ExpireRedisKeysResult {
  pattern: string;
  ttlSeconds: number;
  dryRun: boolean;
  /** Keys given the TTL (execute), over every attempt of this activity. */
  expired?: number;
  /** Keys a run would give the TTL (dry run): min(withoutTtl, maxKeys). */
  wouldExpire?: number;
  /** Dry run only: keys without a TTL found; the count stops once it is past maxKeys (then capped). */
  withoutTtl?: number;
  /** Stopped at maxKeys with keys possibly left without a TTL (execute), or more keys without a TTL than maxKeys (dry run). */
  capped: boolean;
  /** EXPIRE scripts sent (execute, over every attempt) or that a run would send (dry run). */
  batches: number;
  /** Set when this attempt continued from a previous attempt's heartbeat. */
  resumedFrom?: { cursor: string; expired: number };
}

/** What the TTL pass heartbeats: every key without a TTL on SCAN pages before `cursor` has been given one. */
export interface ExpireRedisKeysProgress {
  pattern: string;
  cursor: string;
  expired: number;
  batches: number;
  /** The scan reached its end or the cap: a retry only reports. */
  done: boolean;
  capped: boolean;
}

const defaultScanCount = 5000;
const defaultBatchSize = 1000;
const defaultTtlSampleSize = 10_000;

function requireRedis(redis: Redis | undefined): Redis {
  if (!redis) throw failure('InvalidInput', 'Redis is not configured (REDIS_URL)');
  return redis;
}

function validatePattern(pattern: unknown): string {
  if (typeof pattern !== 'string' || pattern.length === 0) throw invalidInput('Redis key pattern: expected a non-empty string');
  if (pattern.length > 512) throw invalidInput('Redis key pattern: longer than 512 characters');
  if (/[\r\n\0]/.test(pattern)) throw invalidInput('Redis key pattern: contains control characters');
  return pattern;
}

function toNumber(fields: Record<string, string>, name: string): number {
  const value = Number(fields[name]);
  if (fields[name] === undefined || !Number.isFinite(value)) throw failure('Transient', `INFO memory: field ${name} missing or not a number`);
  return value;
}

/** One CONFIG parameter's value; a server that returns none has CONFIG renamed or disabled. */
async function configGet(client: Redis, name: string): Promise<string> {
  const reply = (await inRedis(`CONFIG GET ${name}`, () => client.config('GET', name))) as string[];
  if (reply[1] === undefined) throw failure('Forbidden', `CONFIG GET ${name}: no value returned (CONFIG renamed or disabled?)`);
  return reply[1];
}

/**
 * UNLINKs KEYS[2..] and adds how many went to the tally KEYS[1] in one atomic step, so what an
 * attempt removed is counted even when it dies before its next heartbeat.
 */
const unlinkTalliedScript = `
local removed = 0
for i = 2, #KEYS, 1000 do
  removed = removed + redis.call('UNLINK', unpack(KEYS, i, math.min(i + 999, #KEYS)))
end
redis.call('INCRBY', KEYS[1], removed)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return removed`;
/**
 * EXPIRE KEYS[2..] ARGV[2] NX (only keys without a TTL get one: a key that has one, also one an
 * earlier attempt set, keeps it) and adds how many were set to the tally KEYS[1], in one atomic step.
 */
const expireTalliedScript = `
local set = 0
for i = 2, #KEYS do
  set = set + redis.call('EXPIRE', KEYS[i], ARGV[2], 'NX')
end
redis.call('INCRBY', KEYS[1], set)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return set`;
/** A tally outlives any retry of its activity (kept a day after its last batch). */
const tallyTtlMs = 24 * 60 * 60 * 1000;

/** What a capped pass does to keys, and the name of its count in heartbeats and tallies. */
type KeyPassUnit = 'deleted' | 'expired';
const tallyKind: Record<KeyPassUnit, string> = { deleted: 'unlinked', expired: 'expired' };

/** One tally per activity execution, pass and pattern; it never matches a pattern's own keys by accident (see the filter). */
function tallyKey(pattern: string, unit: KeyPassUnit): string {
  const { workflowExecution, activityId } = Context.current().info;
  const digest = createHash('sha256').update(pattern).digest('hex').slice(0, 16);
  return `runbook-automation:${tallyKind[unit]}:${workflowExecution?.workflowId ?? 'none'}:${workflowExecution?.runId ?? 'none'}:${activityId}:${digest}`;
}

/** A capped pass's heartbeat (DeleteRedisKeysProgress, ExpireRedisKeysProgress): the count under the pass's unit. */
type PassProgress = { pattern: string; cursor: string; batches: number; done: boolean; capped: boolean } & Partial<Record<KeyPassUnit, number>>;

function isProgress(value: unknown, pattern: string, unit: KeyPassUnit): value is PassProgress & Record<KeyPassUnit, number> {
  const p = value as Partial<PassProgress> | undefined;
  return (
    typeof p === 'object' &&
    p !== null &&
    p.pattern === pattern &&
    typeof p.cursor === 'string' &&
    /^\d+$/.test(p.cursor) &&
    Number.isInteger(p[unit]) &&
    p[unit]! >= 0 &&
    Number.isInteger(p.batches) &&
    p.batches! >= 0
  );
}

function validateTtlSeconds(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < keyTtlBounds.min || value > keyTtlBounds.max) {
    throw invalidInput(
      `ttlSeconds ${String(value)}: expected whole seconds from ${keyTtlBounds.min} (1 minute) to ${keyTtlBounds.max} (30 days); 0 or less would delete the keys, more would not bound them`,
    );
  }
  return value;
}

/** A key no allowlisted pattern matches (nor the tallies' prefix): a GET of it, which finds nothing, tells whether the user is limited to its patterns. */
const probeKey = 'runbook-preflight-probe:outside-the-allowlist';

/** Whether a probe is refused by the user's ACL (NOPERM); other errors are thrown. */
async function refusedByAcl(call: () => Promise<unknown>): Promise<boolean> {
  try {
    await call();
    return false;
  } catch (err) {
    if (err instanceof Error && err.message.startsWith('NOPERM')) return true;
    throw err;
  }
}

/**
 * What the connected user may do beyond the runbooks' needs (deploy/redis/runbook-worker.acl), by
 * harmless probes: SLOWLOG LEN (an @admin command no runbook runs) and a GET outside the patterns.
 */
async function excessRedisAccess(redis: Redis): Promise<string[]> {
  return [
    ...((await refusedByAcl(() => redis.call('SLOWLOG', 'LEN'))) ? [] : ['SLOWLOG LEN is allowed: the user may run commands no runbook runs (allcommands or +@admin)']),
    ...((await refusedByAcl(() => redis.get(probeKey))) ? [] : ['a GET outside the allowlisted key patterns is allowed (allkeys or a wider ~pattern)']),
  ];
}

/** Which keys of a SCAN page have no TTL, by pipelined TTL (one round trip per page); a key gone meanwhile (-2) is not counted. */
async function withoutTtl(client: Redis, keys: Buffer[], action: string): Promise<Buffer[]> {
  if (keys.length === 0) return [];
  const pipeline = client.pipeline();
  for (const key of keys) pipeline.ttl(key);
  const ttls = await inRedis(action, async () =>
    ((await pipeline.exec()) ?? []).map(([err, ttl]) => {
      if (err) throw err;
      return ttl;
    }),
  );
  return keys.filter((_, i) => ttls[i] === -1);
}

/** A capped pass over the keys of a pattern (delete, set a TTL): what differs between them. */
interface KeyPass {
  pattern: string;
  maxKeys: number;
  scanCount: number;
  batchSize: number;
  action: string;
  unit: KeyPassUnit;
  /** The keys of a SCAN page the pass acts on (all of them, or those without a TTL). */
  select?: (keys: Buffer[]) => Promise<Buffer[]>;
  /** Acts on one batch in one atomic script that adds what it did to the tally; returns how many keys it changed. */
  batch: (tally: string, keys: Buffer[]) => Promise<number>;
}

interface KeyPassResult {
  count: number;
  capped: boolean;
  batches: number;
  resumedFrom?: { cursor: string; count: number };
}

export function createRedisActivities({ redis, allowedKeyPatterns }: RedisDeps) {
  /**
   * SCANs the keyspace for the pattern; heartbeats (cursor, count) so a retry resumes. With
   * `inspect`, also counts what it finds on each page (`found`) and may stop early (`stop`).
   */
  async function countMatching(
    client: Redis,
    pattern: string,
    scanCount: number,
    action: string,
    inspect?: { found: (keys: Buffer[]) => Promise<number>; stop: (t: { count: number; found: number }) => boolean },
  ): Promise<{ count: number; scans: number; found: number; complete: boolean }> {
    const ctx = Context.current();
    const previous = ctx.info.heartbeatDetails as { countPattern?: string; cursor?: string; count?: number; scans?: number; found?: number } | undefined;
    let cursor = '0';
    let count = 0;
    let scans = 0;
    let found = 0;
    if (previous?.countPattern === pattern && typeof previous.cursor === 'string' && Number.isInteger(previous.count) && previous.cursor !== '0') {
      cursor = previous.cursor;
      count = previous.count!;
      scans = previous.scans ?? 0;
      found = Number.isInteger(previous.found) ? previous.found! : 0;
    }
    do {
      const [next, keys] = await inRedis(action, () => client.scanBuffer(cursor, 'MATCH', pattern, 'COUNT', scanCount));
      if (inspect) found += await inspect.found(keys);
      cursor = next.toString();
      count += keys.length;
      scans++;
      if (cursor !== '0') ctx.heartbeat({ countPattern: pattern, cursor, count, scans, ...(inspect ? { found } : {}) });
      throwIfCancelled(ctx);
    } while (cursor !== '0' && !inspect?.stop({ count, found }));
    return { count, scans, found, complete: cursor === '0' };
  }

  /**
   * The capped, resumable pass of deleteRedisKeys and expireRedisKeys: SCAN with a large COUNT, the
   * page's selected keys in batches of one atomic tallied script each, the next SCAN pipelined
   * behind them. Heartbeats its cursor and running total after every page, so a retried attempt
   * continues where the last one stopped; the tally counts what every attempt did, also after its
   * last heartbeat, so the cap counts every attempt. Honours cancellation between pages.
   */
  async function cappedKeyPass(client: Redis, pass: KeyPass): Promise<KeyPassResult> {
    const { pattern, maxKeys, scanCount, batchSize, action, unit } = pass;
    const ctx = Context.current();
    const previous: unknown = ctx.info.heartbeatDetails;
    let cursor = '0';
    let count = 0;
    let batches = 0;
    let resumedFrom: KeyPassResult['resumedFrom'];
    const tally = tallyKey(pattern, unit);
    if (isProgress(previous, pattern, unit)) {
      // The tally counts what every earlier attempt did, also after its last heartbeat.
      const tallied = await inRedis(action, () => client.get(tally));
      const before = tallied === null ? previous[unit] : Number(tallied);
      if (tallied === null) await inRedis(action, () => client.set(tally, before, 'PX', tallyTtlMs));
      if (previous.done) return { count: before, capped: previous.capped, batches: previous.batches, resumedFrom: { cursor: previous.cursor, count: before } };
      ({ cursor, batches } = previous);
      count = before;
      resumedFrom = { cursor, count };
    } else {
      await inRedis(action, () => client.set(tally, 0, 'PX', tallyTtlMs));
    }
    const heartbeat = (done: boolean, capped: boolean) => ctx.heartbeat({ pattern, cursor, [unit]: count, batches, done, capped } as PassProgress);
    const report = (capped: boolean): KeyPassResult => {
      heartbeat(true, capped);
      return { count, capped, batches, ...(resumedFrom ? { resumedFrom } : {}) };
    };
    if (count >= maxKeys) return report(true);

    /** The page at `from`: its next cursor and the keys the pass acts on (the tally never). */
    const page = (from: string) =>
      inRedis(action, () => client.scanBuffer(from, 'MATCH', pattern, 'COUNT', scanCount)).then(async ([nextBuffer, keys]) => {
        const own = keys.filter((key) => key.toString() !== tally);
        return { next: nextBuffer.toString(), matching: pass.select ? await pass.select(own) : own };
      });
    /**
     * One page's batches still running. Redis runs them while the client reads and selects the
     * next page (asked for before them), so it never waits for the client between pages.
     */
    let inFlight: { next: string; counts: Promise<number[]>; batches: number; taken: number } | undefined;
    /** Counts the page in flight and moves the cursor past it: every page before `cursor` is done. */
    const settle = async () => {
      if (!inFlight) return;
      const { next, counts, batches: sent } = inFlight;
      inFlight = undefined;
      for (const n of await inRedis(action, () => counts)) count += n;
      batches += sent;
      cursor = next;
    };
    /** Between pages: on cancellation the page in flight is counted first, so the last heartbeat says exactly how far it got. */
    const between = async () => {
      heartbeat(false, false);
      if (!ctx.cancellationSignal.aborted) return;
      await settle();
      heartbeat(false, false);
      throwIfCancelled(ctx);
    };
    // `pending` is the page at `cursor`: every page before `cursor` is already done.
    let pending = page(cursor);
    for (;;) {
      const read = await pending.then(
        (value) => ({ ok: true as const, value }),
        (err: unknown) => ({ ok: false as const, err }),
      );
      if (!read.ok) {
        await settle(); // a batch that failed is reported first, as the earlier failure
        throw read.err;
      }
      const { next, matching } = read.value;
      const settled = inFlight !== undefined;
      // Near the cap, the keys in flight are counted first, so the cap is exact.
      if (inFlight && count + inFlight.taken + matching.length >= maxKeys) await settle();
      const remaining = maxKeys - count - (inFlight?.taken ?? 0);
      const take = matching.length > remaining ? matching.slice(0, remaining) : matching;
      const capHit = take.length === remaining && (matching.length > remaining || next !== '0');
      if (next !== '0' && !capHit) {
        pending = page(next);
        pending.catch(() => undefined); // awaited above; this only keeps a failure while a batch fails first from going unhandled
      }
      const sent: Array<Promise<number>> = [];
      for (let at = 0; at < take.length; at += batchSize) sent.push(pass.batch(tally, take.slice(at, at + batchSize)));
      const counts = Promise.all(sent);
      counts.catch(() => undefined); // awaited in settle
      await settle(); // the page before, sent ahead of this one
      inFlight = { next, counts, batches: sent.length, taken: take.length };
      if (capHit || next === '0') {
        await settle();
        return report(capHit);
      }
      if (settled) await between();
    }
  }

  /** The pattern, allowlisted, and the pass's limits: what deleteRedisKeys and expireRedisKeys check alike. */
  function passInput(input: { pattern: string; maxKeys: number; scanCount?: number; batchSize?: number } | undefined) {
    const pattern = validatePattern(input?.pattern);
    assertRedisPatternAllowed(pattern, { redisKeyPatterns: allowedKeyPatterns });
    return {
      pattern,
      maxKeys: validateInt(input!.maxKeys, 'maxKeys', 1, 100_000_000),
      scanCount: validateInt(input!.scanCount, 'scanCount', 1, 1_000_000, defaultScanCount),
      batchSize: validateInt(input!.batchSize, 'batchSize', 1, 100_000, defaultBatchSize),
    };
  }

  return {
    async preflightRedis(): Promise<PreflightRow[]> {
      if (!redis) return notConfigured('redis');
      return runChecks('redis', [
        ['PING', async () => ({ ok: (await redis.ping()) === 'PONG', detail: 'PONG' })],
        [
          'INFO',
          async () => {
            const server = parseInfo(await redis.info('server'));
            const memory = parseInfo(await redis.info('memory'));
            return { ok: true, detail: `Redis ${server.redis_version}, used_memory ${memory.used_memory_human}, maxmemory ${memory.maxmemory_human}` };
          },
        ],
        [
          'CONFIG GET allowed',
          async () => {
            const reply = (await redis.config('GET', 'maxmemory-policy')) as string[];
            return { ok: reply.length === 2, detail: `maxmemory-policy ${reply[1]}` };
          },
        ],
        [
          'SCAN allowlisted patterns',
          async () => {
            const counts: string[] = [];
            for (const pattern of allowedKeyPatterns) {
              const [, keys] = await redis.scan('0', 'MATCH', pattern, 'COUNT', 100);
              counts.push(`${pattern}: ${keys.length}+ in first batch`);
            }
            return { ok: true, detail: counts.join('; ') || 'no patterns allowlisted' };
          },
        ],
        [
          'no excess privileges',
          async () => excessOutcome(await excessRedisAccess(redis), "beyond the runbooks' commands and key patterns (SLOWLOG LEN and a GET outside them are refused: no allcommands, no allkeys)"),
        ],
      ]);
    },

    /** `INFO memory` and `DBSIZE` as numbers. Read-only. */
    async redisMemoryInfo(): Promise<RedisMemoryInfo> {
      const client = requireRedis(redis);
      const [info, dbsize] = await inRedis('read Redis INFO memory and DBSIZE', () => Promise.all([client.info('memory'), client.dbsize()]));
      const fields = parseInfo(info);
      const usedMemory = toNumber(fields, 'used_memory');
      const maxmemory = toNumber(fields, 'maxmemory');
      return {
        usedMemory,
        usedMemoryPeak: toNumber(fields, 'used_memory_peak'),
        maxmemory,
        maxmemoryPolicy: fields.maxmemory_policy ?? 'unknown',
        memFragmentationRatio: toNumber(fields, 'mem_fragmentation_ratio'),
        usedMemoryRatio: maxmemory > 0 ? usedMemory / maxmemory : null,
        dbsize,
      };
    },

    /** `CONFIG GET maxmemory-policy`. Read-only. */
    async getMaxmemoryPolicy(): Promise<{ policy: string }> {
      const client = requireRedis(redis);
      return { policy: await configGet(client, 'maxmemory-policy') };
    },

    /** `CONFIG SET maxmemory-policy`; no command when already set; dryRun only reports. */
    async setMaxmemoryPolicy(input: SetMaxmemoryPolicyInput): Promise<SetMaxmemoryPolicyResult> {
      const client = requireRedis(redis);
      const policy = input?.policy;
      if (typeof policy !== 'string' || !(maxmemoryPolicies as readonly string[]).includes(policy)) {
        throw invalidInput(`maxmemory-policy "${String(policy)}" is not a Redis policy (${maxmemoryPolicies.join(', ')})`);
      }
      const dryRun = input.dryRun === true;
      const before = await configGet(client, 'maxmemory-policy');
      if (before === policy) return { before, after: policy, changed: false, dryRun };
      if (dryRun) return { before, after: policy, changed: false, dryRun };
      await inRedis(`CONFIG SET maxmemory-policy ${policy}`, () => client.config('SET', 'maxmemory-policy', policy));
      return { before, after: policy, changed: true, dryRun };
    },

    /**
     * `CONFIG SET maxmemory <bytes>`; no command when already set; dryRun only reports. Refuses 0
     * (it removes the limit) and anything but a positive whole number of bytes. Like every CONFIG
     * SET, the value lasts until Redis restarts: the Redis config must carry it too.
     */
    async setMaxmemory(input: SetMaxmemoryInput): Promise<SetMaxmemoryResult> {
      const client = requireRedis(redis);
      const bytes: unknown = input?.bytes;
      if (bytes === 0) throw invalidInput('maxmemory 0 would remove the limit (Redis would grow until the container is OOM-killed); refused');
      if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes <= 0) {
        throw invalidInput(`maxmemory "${String(bytes)}": expected a positive whole number of bytes`);
      }
      const dryRun = input.dryRun === true;
      const current = async (): Promise<number> => {
        const text = await configGet(client, 'maxmemory');
        const value = Number(text);
        if (!Number.isSafeInteger(value) || value < 0) throw failure('Transient', `CONFIG GET maxmemory: "${text}" is not a number of bytes`);
        return value;
      };
      const before = await current();
      if (before === bytes || dryRun) return { before, after: bytes, changed: false, dryRun };
      await inRedis(`CONFIG SET maxmemory ${bytes}`, () => client.config('SET', 'maxmemory', String(bytes)));
      return { before, after: await current(), changed: true, dryRun };
    },

    /** Keys matching a pattern, by SCAN (never KEYS). Read-only; heartbeats so a retry resumes. */
    async countRedisKeys(input: CountRedisKeysInput): Promise<CountRedisKeysResult> {
      const client = requireRedis(redis);
      const pattern = validatePattern(input?.pattern);
      const scanCount = validateInt(input.scanCount, 'scanCount', 1, 1_000_000, defaultScanCount);
      const { count, scans } = await countMatching(client, pattern, scanCount, `SCAN MATCH ${pattern}`);
      return { pattern, count, scans };
    },

    /**
     * Counts the keys matching a pattern that have no TTL: SCAN, and a pipelined TTL of each page's
     * keys, until `sampleSize` keys are checked (then `complete` is false: a sample, whose share
     * without a TTL the caller scales to the pattern's count). Read-only; heartbeats so a retry resumes.
     */
    async countRedisKeysWithoutTtl(input: CountRedisKeysWithoutTtlInput): Promise<CountRedisKeysWithoutTtlResult> {
      const client = requireRedis(redis);
      const pattern = validatePattern(input?.pattern);
      const sampleSize = validateInt(input.sampleSize, 'sampleSize', 1, 100_000_000, defaultTtlSampleSize);
      const scanCount = validateInt(input.scanCount, 'scanCount', 1, 1_000_000, defaultScanCount);
      const action = `count Redis keys without a TTL matching ${pattern}`;
      const counted = await countMatching(client, pattern, scanCount, action, {
        found: async (keys) => (await withoutTtl(client, keys, action)).length,
        stop: ({ count }) => count >= sampleSize,
      });
      return { pattern, checked: counted.count, withoutTtl: counted.found, complete: counted.complete, scans: counted.scans };
    },

    /**
     * Deletes keys matching an allowlisted pattern: SCAN with a large COUNT, UNLINK in batches
     * (cappedKeyPass). Never KEYS, never FLUSH*. dryRun counts only.
     */
    async deleteRedisKeys(input: DeleteRedisKeysInput): Promise<DeleteRedisKeysResult> {
      const client = requireRedis(redis);
      const { pattern, maxKeys, scanCount, batchSize } = passInput(input);
      const action = `delete Redis keys matching ${pattern}`;

      if (input.dryRun === true) {
        const { count } = await countMatching(client, pattern, scanCount, `count Redis keys matching ${pattern}`);
        const wouldDelete = Math.min(count, maxKeys);
        return { pattern, dryRun: true, wouldDelete, matching: count, capped: count > maxKeys, batches: Math.ceil(wouldDelete / batchSize) };
      }

      const done = await cappedKeyPass(client, {
        pattern,
        maxKeys,
        scanCount,
        batchSize,
        action,
        unit: 'deleted',
        batch: (tally, keys) => client.eval(unlinkTalliedScript, keys.length + 1, tally, ...keys, tallyTtlMs) as Promise<number>,
      });
      return {
        pattern,
        dryRun: false,
        deleted: done.count,
        capped: done.capped,
        batches: done.batches,
        ...(done.resumedFrom ? { resumedFrom: { cursor: done.resumedFrom.cursor, deleted: done.resumedFrom.count } } : {}),
      };
    },

    /**
     * The manual's 设置过期时间 in bulk: gives the keys matching an allowlisted pattern that have no
     * TTL the TTL `ttlSeconds` (SCAN, pipelined TTL per page, EXPIRE ... NX in batches:
     * cappedKeyPass). Keys that have a TTL keep theirs, so a retried page sets nothing twice.
     * dryRun counts the keys without a TTL, and stops counting once past maxKeys.
     */
    async expireRedisKeys(input: ExpireRedisKeysInput): Promise<ExpireRedisKeysResult> {
      const client = requireRedis(redis);
      const { pattern, maxKeys, scanCount, batchSize } = passInput(input);
      const ttlSeconds = validateTtlSeconds(input.ttlSeconds);
      const action = `set a TTL on Redis keys matching ${pattern}`;
      const select = (keys: Buffer[]) => withoutTtl(client, keys, action);

      if (input.dryRun === true) {
        const counted = await countMatching(client, pattern, scanCount, `count Redis keys without a TTL matching ${pattern}`, {
          found: async (keys) => (await select(keys)).length,
          stop: ({ found }) => found > maxKeys,
        });
        const wouldExpire = Math.min(counted.found, maxKeys);
        return { pattern, ttlSeconds, dryRun: true, wouldExpire, withoutTtl: counted.found, capped: counted.found > maxKeys, batches: Math.ceil(wouldExpire / batchSize) };
      }

      const done = await cappedKeyPass(client, {
        pattern,
        maxKeys,
        scanCount,
        batchSize,
        action,
        unit: 'expired',
        select,
        batch: (tally, keys) => client.eval(expireTalliedScript, keys.length + 1, tally, ...keys, tallyTtlMs, ttlSeconds) as Promise<number>,
      });
      return {
        pattern,
        ttlSeconds,
        dryRun: false,
        expired: done.count,
        capped: done.capped,
        batches: done.batches,
        ...(done.resumedFrom ? { resumedFrom: { cursor: done.resumedFrom.cursor, expired: done.resumedFrom.count } } : {}),
      };
    },
  };
}
