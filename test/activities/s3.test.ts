import { createHash, randomUUID } from 'node:crypto';
import { DeleteObjectsCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { backupTime, createS3Activities, dateInKeyName } from '../../activities/s3';
import { activityHarness, type ActivityHarness } from '../helpers/activity-context';
import { testbedEnv, testbedS3 } from '../helpers/testbed';
import type { Info } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';
import { failureOf } from '../helpers/failures';

/**
 * The S3 activities against the test bed's real SeaweedFS. The seeded backups under database/
 * are only read; every object a test writes lives under a unique database/…test-<uuid>/ or
 * runbooks/test-<uuid>/ prefix, and the harness's allowlist is narrowed to those prefixes so even
 * a bug could not delete the seeded ones.
 */
const env = testbedEnv();
const Bucket = env.S3_BUCKET!;
const s3 = testbedS3();
const dayMs = 86_400_000;
const harnesses: ActivityHarness[] = [];
const createdPrefixes: string[] = [];

function uniquePrefix(parent: 'database/' | 'runbooks/', label = 'test'): string {
  const prefix = `${parent}${label}-${randomUUID()}/`;
  createdPrefixes.push(prefix);
  return prefix;
}

/** Keeps only the newest backup as the floor unless a test says otherwise: the floor has tests of its own. */
function harness(allowedPrefixes: string[], env: Record<string, string> = {}, info: Partial<Info> = {}): ActivityHarness {
  const h = activityHarness({ ALLOWED_S3_PREFIXES: ['runbooks/', ...allowedPrefixes].join(','), S3_BACKUP_KEEP_NEWEST: '1', ...env }, undefined, info);
  harnesses.push(h);
  return h;
}

function isoDay(offsetDays: number): string {
  return new Date(Date.now() + offsetDays * dayMs).toISOString().slice(0, 10);
}

async function put(Key: string, Body: string | Buffer = Key): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket, Key, Body }));
}

async function putMany(keys: string[], concurrency = 32): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < keys.length) await put(keys[next++]!);
    }),
  );
}

async function listKeys(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let ContinuationToken: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket, Prefix: prefix, ContinuationToken }));
    keys.push(...(page.Contents ?? []).map((o) => o.Key!));
    ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (ContinuationToken);
  return keys.sort();
}

afterEach(async () => {
  await Promise.all(harnesses.splice(0).map((h) => h.close()));
});

afterAll(async () => {
  for (const prefix of createdPrefixes) {
    const keys = await listKeys(prefix);
    for (let at = 0; at < keys.length; at += 1000) {
      await s3.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: keys.slice(at, at + 1000).map((Key) => ({ Key })) } }));
    }
  }
  s3.destroy();
});

describe('listNewestObjects', () => {
  test('newest first by LastModified (not by key), over the whole listing', async () => {
    // Both written now, so newer than the seeded backups; their keys sort before and after them.
    const early = uniquePrefix('database/', '0-test');
    const late = uniquePrefix('database/', 'z-test');
    await put(`${early}new.sql`);
    await put(`${late}new.sql`);
    const h = harness([]);
    const result = await h.run('listNewestObjects', { prefix: 'database/', limit: 1000 });
    expect(result.prefix).toBe('database/');
    const keys = result.objects.map((o) => o.key);
    const mine = [keys.indexOf(`${early}new.sql`), keys.indexOf(`${late}new.sql`)];
    const seeded = ['database/latest.sql', ...keys.filter((k) => /^database\/short_drama_prod_\d{4}-\d{2}-\d{2}\.(sql|dump)$/.test(k))].map((k) => keys.indexOf(k));
    expect(Math.min(...mine)).toBeGreaterThanOrEqual(0);
    expect(seeded.length).toBeGreaterThanOrEqual(4);
    expect(Math.min(...seeded)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...mine)).toBeLessThan(Math.min(...seeded));
    for (let i = 1; i < result.objects.length; i++) {
      expect(Date.parse(result.objects[i - 1]!.lastModified)).toBeGreaterThanOrEqual(Date.parse(result.objects[i]!.lastModified));
    }
    const latest = result.objects.find((o) => o.key === 'database/latest.sql')!;
    expect(latest.size).toBeGreaterThan(0);
    expect(latest.lastModified).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  });

  test('the default is the 5 newest under the backup prefix', async () => {
    const h = harness([]);
    const result = await h.run('listNewestObjects');
    expect(result.prefix).toBe('database/');
    expect(result.objects).toHaveLength(5 <= result.total ? 5 : result.total);
    expect(result.total).toBeGreaterThanOrEqual(4);
  });

  test('bad input: limit 0 or too big, prefix with ".."', async () => {
    const h = harness([]);
    expect((await failureOf(h.run('listNewestObjects', { limit: 0 }))).type).toBe('InvalidInput');
    expect((await failureOf(h.run('listNewestObjects', { limit: 5000 }))).type).toBe('InvalidInput');
    expect((await failureOf(h.run('listNewestObjects', { prefix: 'database/../runbooks/' }))).type).toBe('InvalidInput');
  });
});

describe('verifyDumpObject', () => {
  test('the seeded plain and custom pg_dump backups are valid', async () => {
    const h = harness([]);
    const plain = await h.run('verifyDumpObject', { key: 'database/latest.sql' });
    expect(plain).toMatchObject({ key: 'database/latest.sql', exists: true, format: 'plain', valid: true });
    expect(plain.size).toBeGreaterThan(1000);
    const customKey = (await listKeys('database/')).find((k) => /^database\/short_drama_prod_[\d-]+\.dump$/.test(k))!;
    const custom = await h.run('verifyDumpObject', { key: customKey });
    expect(custom).toMatchObject({ key: customKey, exists: true, format: 'custom', valid: true });
    expect(custom.archiveVersion).toMatch(/^1\.\d+\.\d+$/);
  });

  test('missing, empty and non-dump objects are reported invalid, not thrown; bad keys are', async () => {
    const prefix = uniquePrefix('database/');
    await put(`${prefix}empty.sql`, '');
    await put(`${prefix}notes.sql`, 'SELECT 1;\n-- not a dump\n');
    await put(`${prefix}late-header.sql`, `${'x'.repeat(2000)}\n-- PostgreSQL database dump\n`);
    const h = harness([]);
    expect(await h.run('verifyDumpObject', { key: `${prefix}missing.sql` })).toEqual({ key: `${prefix}missing.sql`, exists: false, size: 0, valid: false, problem: 'object not found' });
    expect(await h.run('verifyDumpObject', { key: `${prefix}empty.sql` })).toMatchObject({ exists: true, size: 0, valid: false, problem: 'object is empty' });
    expect(await h.run('verifyDumpObject', { key: `${prefix}notes.sql` })).toMatchObject({ exists: true, format: 'unknown', valid: false });
    // The header must be within the first KB.
    expect(await h.run('verifyDumpObject', { key: `${prefix}late-header.sql` })).toMatchObject({ exists: true, format: 'unknown', valid: false });
    expect((await failureOf(h.run('verifyDumpObject', { key: '' }))).type).toBe('InvalidInput');
    expect((await failureOf(h.run('verifyDumpObject', { key: '/database/latest.sql' }))).type).toBe('InvalidInput');
  });

  test('reads a byte range of the first KB, never the whole object', async () => {
    const prefix = uniquePrefix('database/');
    const key = `${prefix}big.sql`;
    const body = Buffer.concat([Buffer.from('--\n-- PostgreSQL database dump\n--\n'), Buffer.alloc(3 * 1024 * 1024, 'x')]);
    await put(key, body);
    const client = testbedS3();
    const gets: Array<{ range?: string; bytes?: number }> = [];
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const out = await next(args);
        if (context.commandName === 'GetObjectCommand') {
          const output = out.output as { ContentLength?: number };
          gets.push({ range: (args.input as { Range?: string }).Range, bytes: output.ContentLength });
        }
        return out;
      },
      { step: 'initialize', name: 'recordGets' },
    );
    try {
      const activities = createS3Activities({ s3: client, bucket: Bucket, backupPrefix: 'database/', evidencePrefix: 'runbooks/', allowedPrefixes: [] });
      const result = await activities.verifyDumpObject({ key });
      expect(result).toMatchObject({ exists: true, format: 'plain', valid: true, size: body.length });
      expect(gets).toEqual([{ range: 'bytes=0-1023', bytes: 1024 }]);
    } finally {
      client.destroy();
    }
  });
});

describe('putEvidence', () => {
  test('writes with its sha256; the same content again is no change; different content is refused unless overwrite', async () => {
    const prefix = uniquePrefix('runbooks/');
    const key = `${prefix}report.md`;
    const body = `# Incident ${randomUUID()}\n\ntimeline…\n`;
    const sha256 = createHash('sha256').update(body).digest('hex');
    const h = harness([]);

    const dry = await h.run('putEvidence', { key, body, contentType: 'text/markdown', dryRun: true });
    expect(dry).toEqual({ key, size: Buffer.byteLength(body), sha256, written: false, multipart: false, dryRun: true });
    expect(await listKeys(prefix)).toEqual([]);

    const first = await h.run('putEvidence', { key, body, contentType: 'text/markdown' });
    expect(first).toEqual({ key, size: Buffer.byteLength(body), sha256, written: true, multipart: false, dryRun: false });
    const head = await s3.send(new HeadObjectCommand({ Bucket, Key: key }));
    expect(head.Metadata?.sha256).toBe(sha256);
    expect(head.ContentType).toBe('text/markdown');
    expect(head.ContentLength).toBe(Buffer.byteLength(body));
    expect(await (await s3.send(new GetObjectCommand({ Bucket, Key: key }))).Body!.transformToString()).toBe(body);

    const second = await h.run('putEvidence', { key, body, contentType: 'text/markdown' });
    expect(second.written).toBe(false);
    const headAgain = await s3.send(new HeadObjectCommand({ Bucket, Key: key }));
    expect(headAgain.ETag).toBe(head.ETag);
    expect(headAgain.LastModified).toEqual(head.LastModified);

    const err = await failureOf(h.run('putEvidence', { key, body: 'something else' }));
    expect(err.type).toBe('Refused');
    expect(await (await s3.send(new GetObjectCommand({ Bucket, Key: key }))).Body!.transformToString()).toBe(body);

    const replaced = await h.run('putEvidence', { key, body: 'something else', overwrite: true });
    expect(replaced).toMatchObject({ written: true, size: 14 });
    expect(await (await s3.send(new GetObjectCommand({ Bucket, Key: key }))).Body!.transformToString()).toBe('something else');
  });

  test('bytes, also as a JSON-serialised Buffer (what a workflow argument becomes)', async () => {
    const prefix = uniquePrefix('runbooks/');
    const bytes = Buffer.from([0, 1, 2, 250, 251, 252]);
    const h = harness([]);
    const asJson = JSON.parse(JSON.stringify(bytes)) as { type: 'Buffer'; data: number[] };
    const result = await h.run('putEvidence', { key: `${prefix}blob.bin`, body: asJson });
    expect(result).toMatchObject({ size: 6, sha256: createHash('sha256').update(bytes).digest('hex'), written: true });
    const read = Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket, Key: `${prefix}blob.bin` }))).Body!.transformToByteArray());
    expect(read.equals(bytes)).toBe(true);
    expect((await s3.send(new HeadObjectCommand({ Bucket, Key: `${prefix}blob.bin` }))).ContentType).toBe('application/octet-stream');
    expect((await h.run('putEvidence', { key: `${prefix}blob.bin`, body: bytes })).written).toBe(false);
  });

  test('a body over 8 MiB goes up as a multipart upload, whole', async () => {
    const prefix = uniquePrefix('runbooks/');
    const key = `${prefix}logs.txt`;
    const body = Buffer.alloc(9 * 1024 * 1024 + 123);
    for (let i = 0; i < body.length; i++) body[i] = 97 + (i % 26);
    const h = harness([]);
    const result = await h.run('putEvidence', { key, body, contentType: 'text/plain' });
    const sha256 = createHash('sha256').update(body).digest('hex');
    expect(result).toEqual({ key, size: body.length, sha256, written: true, multipart: true, dryRun: false });
    const head = await s3.send(new HeadObjectCommand({ Bucket, Key: key }));
    expect(head.ContentLength).toBe(body.length);
    expect(head.Metadata?.sha256).toBe(sha256);
    expect(head.ETag).toMatch(/-2"?$/); // a multipart ETag names its part count
    const read = Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket, Key: key }))).Body!.transformToByteArray());
    expect(createHash('sha256').update(read).digest('hex')).toBe(sha256);
    expect((await h.run('putEvidence', { key, body, contentType: 'text/plain' })).written).toBe(false);
  });

  test('refuses keys outside the evidence prefix and nonsense bodies', async () => {
    const h = harness([]);
    expect((await failureOf(h.run('putEvidence', { key: 'database/latest.sql', body: 'x' }))).type).toBe('Refused');
    expect((await failureOf(h.run('putEvidence', { key: 'runbooks/', body: 'x' }))).type).toBe('Refused');
    expect((await failureOf(h.run('putEvidence', { key: 'runbooks/../database/latest.sql', body: 'x' }))).type).toBe('InvalidInput');
    expect((await failureOf(h.run('putEvidence', { key: 'runbooks/x', body: 42 as unknown as string }))).type).toBe('InvalidInput');
    expect((await failureOf(h.run('putEvidence', { key: 'runbooks/x', body: 'x', contentType: 'not a type' }))).type).toBe('InvalidInput');
    expect((await s3.send(new HeadObjectCommand({ Bucket, Key: 'database/latest.sql' }))).ContentLength).toBeGreaterThan(0);
  });
});

describe('backup age rule', () => {
  test('the older of LastModified and the YYYY-MM-DD in the file name', () => {
    const modified = new Date('2026-11-27T10:00:00Z');
    expect(dateInKeyName('database/short_drama_prod_2026-10-01.sql')?.toISOString()).toBe('2026-10-01T00:00:00.000Z');
    expect(dateInKeyName('database/2020-01-01/short_drama_prod_2026-10-01.dump')?.toISOString()).toBe('2026-10-01T00:00:00.000Z');
    expect(dateInKeyName('database/latest.sql')).toBeUndefined();
    expect(dateInKeyName('database/x_2026-02-30.sql')).toBeUndefined();
    expect(dateInKeyName('database/x_12026-10-01.sql')).toBeUndefined();
    expect(backupTime('database/short_drama_prod_2026-10-01.sql', modified).toISOString()).toBe('2026-10-01T00:00:00.000Z');
    expect(backupTime('database/short_drama_prod_2099-01-01.sql', modified)).toBe(modified);
    expect(backupTime('database/latest.sql', modified)).toBe(modified);
  });
});

describe('deleteOldBackups', () => {
  test('dated names and LastModified age objects; dry run lists only; latest.sql never goes; a second run deletes nothing', async () => {
    const prefix = uniquePrefix('database/');
    const oldest = `${prefix}short_drama_prod_${isoDay(-45)}.sql`;
    const old = `${prefix}short_drama_prod_${isoDay(-31)}.dump`;
    const recent = `${prefix}short_drama_prod_${isoDay(-10)}.sql`;
    const futureName = `${prefix}short_drama_prod_2099-01-01.sql`;
    const undated = `${prefix}notes.txt`;
    const bogusDate = `${prefix}short_drama_prod_2026-13-45.sql`;
    const latest = `${prefix}latest.sql`;
    const oldLatest = `${prefix}archive/latest.sql`;
    const all = [oldest, old, recent, futureName, undated, bogusDate, latest, oldLatest].sort();
    await putMany(all);
    const h = harness([prefix]);

    const dry = await h.run('deleteOldBackups', { prefix, olderThanDays: 30, maxObjects: 100, dryRun: true });
    expect(dry).toMatchObject({ prefix, olderThanDays: 30, dryRun: true, scanned: all.length, old: 2, wouldDelete: 2, keys: [oldest, old], capped: false, batches: 1, protected: [] });
    expect(dry.deleted).toBeUndefined();
    expect(await listKeys(prefix)).toEqual(all);

    const first = await h.run('deleteOldBackups', { prefix, olderThanDays: 30, maxObjects: 100 });
    expect(first).toMatchObject({ dryRun: false, deleted: 2, keys: [oldest, old], capped: false, batches: 1 });
    const afterFirst = all.filter((k) => k !== oldest && k !== old);
    expect(await listKeys(prefix)).toEqual(afterFirst);

    const second = await h.run('deleteOldBackups', { prefix, olderThanDays: 30, maxObjects: 100 });
    expect(second).toMatchObject({ deleted: 0, old: 0, keys: [], batches: 0 });
    expect(await listKeys(prefix)).toEqual(afterFirst);

    // Seen from 400 days on (the workflow's `now`), everything is old by LastModified, even
    // undated and future-named objects; the latest.sql files stay.
    const now = new Date(Date.now() + 400 * dayMs).toISOString();
    const later = await h.run('deleteOldBackups', { prefix, olderThanDays: 30, maxObjects: 100, now });
    expect(later.now).toBe(now);
    expect(later.cutoff).toBe(new Date(Date.parse(now) - 30 * dayMs).toISOString());
    // The newest one stays whatever its age (the floor, here 1).
    expect(later).toMatchObject({ deleted: 3, keepNewest: 1, protected: [oldLatest, latest].sort() });
    expect(later.keptByFloor).toHaveLength(1);
    expect([...later.keys, ...later.keptByFloor!].sort()).toEqual([recent, futureName, undated, bogusDate].sort());
    expect(later.keys[0]).toBe(recent); // oldest first: its name dates it 10 days back
    expect(await listKeys(prefix)).toEqual([oldLatest, latest, ...later.keptByFloor!].sort());
  });

  test('the cap deletes the oldest first and says it stopped', async () => {
    const prefix = uniquePrefix('database/');
    const keys = [35, 40, 50, 60].map((d) => `${prefix}short_drama_prod_${isoDay(-d)}.sql`);
    await putMany(keys);
    const h = harness([prefix]);
    const capped = await h.run('deleteOldBackups', { prefix, olderThanDays: 30, maxObjects: 2 });
    expect(capped).toMatchObject({ old: 3, deleted: 2, capped: true, keys: [keys[3], keys[2]], keptByFloor: [keys[0]] });
    expect(await listKeys(prefix)).toEqual([keys[0], keys[1]].sort());
    const rest = await h.run('deleteOldBackups', { prefix, olderThanDays: 30, maxObjects: 2 });
    expect(rest).toMatchObject({ old: 1, deleted: 1, capped: false });
  });

  test('more than 1000 old objects: full listing, DeleteObjects in batches of 1000; a retry after a killed attempt finishes its set and counts exactly', async () => {
    const prefix = uniquePrefix('database/');
    const keys = Array.from({ length: 1005 }, (_, i) => `${prefix}short_drama_prod_${isoDay(-100)}.part${String(i).padStart(4, '0')}`);
    const newestBackup = `${prefix}short_drama_prod_${isoDay(-1)}.sql`;
    await putMany([...keys, newestBackup]);
    const h = harness([prefix]);
    const newest = await h.run('listNewestObjects', { prefix, limit: 3 });
    expect(newest.total).toBe(1006);
    expect(newest.objects).toHaveLength(3);

    const dry = await h.run('deleteOldBackups', { prefix, olderThanDays: 30, maxObjects: 5000, dryRun: true });
    expect(dry).toMatchObject({ scanned: 1006, wouldDelete: 1005, batches: 2, keysOmitted: 5 });
    expect(dry.keys).toHaveLength(1000);
    expect((await listKeys(prefix)).length).toBe(1006);

    // Cancelled after the first batch: that batch stays deleted, the rest is left for a retry.
    const cancelling = harness([prefix]);
    cancelling.environment.on('heartbeat', (details: { deleted?: number }) => {
      if (details?.deleted === 1000) cancelling.environment.cancel();
    });
    const now = new Date().toISOString();
    await expect(cancelling.run('deleteOldBackups', { prefix, olderThanDays: 30, maxObjects: 5000, now })).rejects.toBeInstanceOf(CancelledFailure);
    expect((await listKeys(prefix)).length).toBe(6);
    // The listing of more than one page heartbeats between pages.
    expect(cancelling.heartbeats).toEqual([{ listed: 1000 }, { deleted: 1000 }]);

    // The retry (attempt 2) knows nothing from heartbeats: the manifest the first attempt wrote
    // before deleting says which set it chose, so the count includes what that attempt removed.
    const retry = harness([prefix], {}, { attempt: 2 });
    const result = await retry.run('deleteOldBackups', { prefix, olderThanDays: 30, maxObjects: 5000, now });
    expect(result).toMatchObject({ deleted: 1005, resumed: { alreadyDeleted: 1000 }, batches: 2, capped: false });
    expect(await listKeys(prefix)).toEqual([newestBackup]);
    expect(retry.heartbeats).toEqual([{ deleted: 5 }]);
    // Once more (the completion was lost): nothing left to remove, the same exact count.
    const again = harness([prefix], {}, { attempt: 3 });
    expect(await again.run('deleteOldBackups', { prefix, olderThanDays: 30, maxObjects: 5000, now })).toMatchObject({ deleted: 1005, resumed: { alreadyDeleted: 1005 } });
  });

  test('refuses prefixes outside the allowlist (the seeded database/ included) and nonsense input', async () => {
    const prefix = uniquePrefix('database/');
    const key = `${prefix}short_drama_prod_${isoDay(-90)}.sql`;
    await put(key);
    const h = harness([prefix]);
    for (const refusedPrefix of ['database/', 'backups/', `${prefix.slice(0, -2)}/`]) {
      const err = await failureOf(h.run('deleteOldBackups', { prefix: refusedPrefix, olderThanDays: 30, maxObjects: 10 }));
      expect(err.type).toBe('Refused');
    }
    for (const input of [
      { prefix: prefix.slice(0, -1), olderThanDays: 30, maxObjects: 10 },
      { prefix, olderThanDays: 0, maxObjects: 10 },
      { prefix, olderThanDays: 30, maxObjects: 0 },
      { prefix, olderThanDays: 30, maxObjects: 10, now: 'yesterday' },
      { prefix: '', olderThanDays: 30, maxObjects: 10 },
    ]) {
      expect((await failureOf(h.run('deleteOldBackups', input))).type).toBe('InvalidInput');
    }
    expect(await listKeys(prefix)).toEqual([key]);
    expect((await listKeys('database/')).filter((k) => /^database\/[^/]+$/.test(k))).toEqual(expect.arrayContaining(['database/latest.sql']));
  });

  test('never where reports and evidence live, never younger than the floor, even when allowlisted', async () => {
    const evidence = uniquePrefix('runbooks/');
    const report = `${evidence}reports/incident_${isoDay(-90)}.md`;
    await put(report);
    const h = harness([evidence]);
    for (const prefix of ['runbooks/', evidence, `${evidence}reports/`]) {
      const err = await failureOf(h.run('deleteOldBackups', { prefix, olderThanDays: 30, maxObjects: 10 }));
      expect([err.type, err.message]).toEqual(['Refused', expect.stringContaining('holds runbook reports and evidence (runbooks/); backups are deleted only under database/')]);
    }
    const backups = uniquePrefix('database/');
    const young = [`${backups}short_drama_prod_${isoDay(-5)}.sql`, `${backups}short_drama_prod_${isoDay(-4)}.sql`];
    await putMany(young);
    const tooYoung = await failureOf(harness([backups]).run('deleteOldBackups', { prefix: backups, olderThanDays: 3, maxObjects: 10 }));
    expect([tooYoung.type, tooYoung.message]).toEqual(['Refused', 'backups younger than 7 days are never deleted (configuration s3.backupMinAgeDays); asked for older than 3 days']);
    expect(await listKeys(evidence)).toEqual([report]);
    expect(await listKeys(backups)).toEqual(young.sort());
  });

  test('with only old backups present, the newest N (default 7) stay whatever their age', async () => {
    const prefix = uniquePrefix('database/');
    const keys = Array.from({ length: 10 }, (_, i) => `${prefix}short_drama_prod_${isoDay(-100 - i)}.sql`);
    await putMany([...keys, `${prefix}latest.sql`]);
    const h = harness([prefix], { S3_BACKUP_KEEP_NEWEST: '7' });
    const first = await h.run('deleteOldBackups', { prefix, olderThanDays: 30, maxObjects: 100 });
    // keys[0] is the newest (100 days), keys[9] the oldest (109 days).
    expect(first).toMatchObject({ deleted: 3, keys: [keys[9], keys[8], keys[7]], keptByFloor: keys.slice(0, 7), keepNewest: 7, protected: [] });
    expect(await listKeys(prefix)).toEqual([...keys.slice(0, 7), `${prefix}latest.sql`].sort());
    const again = await h.run('deleteOldBackups', { prefix, olderThanDays: 30, maxObjects: 100 });
    expect(again).toMatchObject({ deleted: 0, old: 0, keys: [] });
    expect(await listKeys(prefix)).toHaveLength(8);
  });
});
