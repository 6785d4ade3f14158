import { createHash } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { throwIfCancelled } from './cancellation';
import type Redis from 'ioredis';
import type { PreflightRow } from '../common/preflight';
import { callsTo, failure, invalidInput } from './errors';
import { assertRedisPatternAllowed } from './guards';
import { excessOutcome, notConfigured, runChecks } from './preflight-checks';
import { validateInt } from './input-checks';

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

const defaultScanCount = 5000;
const defaultBatchSize = 1000;

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
/** A tally outlives any retry of its activity (kept a day after its last batch). */
const tallyTtlMs = 24 * 60 * 60 * 1000;

/** One tally per activity execution and pattern; it never matches a pattern's own keys by accident (see the filter). */
function tallyKey(pattern: string): string {
  const { workflowExecution, activityId } = Context.current().info;
  const digest = createHash('sha256').update(pattern).digest('hex').slice(0, 16);
  return `runbook-automation:unlinked:${workflowExecution?.workflowId ?? 'none'}:${workflowExecution?.runId ?? 'none'}:${activityId}:${digest}`;
}

function isProgress(value: unknown, pattern: string): value is DeleteRedisKeysProgress {
  const p = value as Partial<DeleteRedisKeysProgress> | undefined;
  return (
    typeof p === 'object' &&
    p !== null &&
    p.pattern === pattern &&
    typeof p.cursor === 'string' &&
    /^\d+$/.test(p.cursor) &&
    Number.isInteger(p.deleted) &&
    p.deleted! >= 0 &&
    Number.isInteger(p.batches) &&
    p.batches! >= 0
  );
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

export function createRedisActivities({ redis, allowedKeyPatterns }: RedisDeps) {
  const unlinkTallied = (client: Redis, tally: string, keys: Buffer[]) => client.eval(unlinkTalliedScript, keys.length + 1, tally, ...keys, tallyTtlMs) as Promise<number>;
  /** SCANs the whole keyspace for the pattern; heartbeats (cursor, count) so a retry resumes. */
  async function countMatching(client: Redis, pattern: string, scanCount: number, action: string): Promise<{ count: number; scans: number }> {
    const ctx = Context.current();
    const previous = ctx.info.heartbeatDetails as { countPattern?: string; cursor?: string; count?: number; scans?: number } | undefined;
    let cursor = '0';
    let count = 0;
    let scans = 0;
    if (previous?.countPattern === pattern && typeof previous.cursor === 'string' && Number.isInteger(previous.count) && previous.cursor !== '0') {
      cursor = previous.cursor;
      count = previous.count!;
      scans = previous.scans ?? 0;
    }
    do {
      const [next, keys] = await inRedis(action, () => client.scanBuffer(cursor, 'MATCH', pattern, 'COUNT', scanCount));
      cursor = next.toString();
      count += keys.length;
      scans++;
      if (cursor !== '0') ctx.heartbeat({ countPattern: pattern, cursor, count, scans });
      throwIfCancelled(ctx);
    } while (cursor !== '0');
    return { count, scans };
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
     * Deletes keys matching an allowlisted pattern: SCAN with a large COUNT, UNLINK in batches,
     * the next SCAN pipelined behind the previous page's UNLINKs. Never KEYS, never FLUSH*.
     * Heartbeats its cursor and running total after every page, so a retried attempt continues
     * where the last one stopped (and the cap counts every attempt). Honours cancellation
     * between pages. dryRun counts only.
     */
    async deleteRedisKeys(input: DeleteRedisKeysInput): Promise<DeleteRedisKeysResult> {
      const client = requireRedis(redis);
      const pattern = validatePattern(input?.pattern);
      assertRedisPatternAllowed(pattern, { redisKeyPatterns: allowedKeyPatterns });
      const maxKeys = validateInt(input.maxKeys, 'maxKeys', 1, 100_000_000);
      const scanCount = validateInt(input.scanCount, 'scanCount', 1, 1_000_000, defaultScanCount);
      const batchSize = validateInt(input.batchSize, 'batchSize', 1, 100_000, defaultBatchSize);
      const action = `delete Redis keys matching ${pattern}`;

      if (input.dryRun === true) {
        const { count } = await countMatching(client, pattern, scanCount, `count Redis keys matching ${pattern}`);
        const wouldDelete = Math.min(count, maxKeys);
        return { pattern, dryRun: true, wouldDelete, matching: count, capped: count > maxKeys, batches: Math.ceil(wouldDelete / batchSize) };
      }

      const ctx = Context.current();
      const previous: unknown = ctx.info.heartbeatDetails;
      let cursor = '0';
      let deleted = 0;
      let batches = 0;
      let resumedFrom: DeleteRedisKeysResult['resumedFrom'];
      const tally = tallyKey(pattern);
      if (isProgress(previous, pattern)) {
        // The tally counts what every earlier attempt removed, also after its last heartbeat.
        const tallied = await inRedis(action, () => client.get(tally));
        const removedBefore = tallied === null ? previous.deleted : Number(tallied);
        if (tallied === null) await inRedis(action, () => client.set(tally, removedBefore, 'PX', tallyTtlMs));
        if (previous.done)
          return { pattern, dryRun: false, deleted: removedBefore, capped: previous.capped, batches: previous.batches, resumedFrom: { cursor: previous.cursor, deleted: removedBefore } };
        ({ cursor, batches } = previous);
        deleted = removedBefore;
        resumedFrom = { cursor, deleted };
      } else {
        await inRedis(action, () => client.set(tally, 0, 'PX', tallyTtlMs));
      }
      const report = (done: boolean, capped: boolean): DeleteRedisKeysResult => {
        ctx.heartbeat({ pattern, cursor, deleted, batches, done, capped } satisfies DeleteRedisKeysProgress);
        return { pattern, dryRun: false, deleted, capped, batches, ...(resumedFrom ? { resumedFrom } : {}) };
      };
      if (deleted >= maxKeys) return report(true, true);

      const scan = (from: string) => inRedis(action, () => client.scanBuffer(from, 'MATCH', pattern, 'COUNT', scanCount));
      // `pending` scans from `cursor`: every page before `cursor` is already unlinked.
      let pending = scan(cursor);
      for (;;) {
        const [nextBuffer, keys] = await pending;
        const next = nextBuffer.toString();
        const remaining = maxKeys - deleted;
        const matching = keys.filter((key) => key.toString() !== tally);
        const take = matching.length > remaining ? matching.slice(0, remaining) : matching;
        const capHit = take.length === remaining && (matching.length > remaining || next !== '0');
        const unlinks: Array<Promise<number>> = [];
        for (let at = 0; at < take.length; at += batchSize) {
          const batch = take.slice(at, at + batchSize);
          unlinks.push(unlinkTallied(client, tally, batch));
        }
        // Queued behind the UNLINKs on the same connection: Redis answers the SCAN while we wait.
        if (next !== '0' && !capHit) {
          pending = scan(next);
          pending.catch(() => undefined); // awaited below; this only keeps a failure while UNLINK fails first from going unhandled
        }
        const counts = await inRedis(action, () => Promise.all(unlinks));
        batches += unlinks.length;
        for (const n of counts) deleted += n;
        if (capHit) return report(true, true);
        cursor = next;
        if (next === '0') return report(true, false);
        ctx.heartbeat({ pattern, cursor, deleted, batches, done: false, capped: false } satisfies DeleteRedisKeysProgress);
        throwIfCancelled(ctx);
      }
    },
  };
}
