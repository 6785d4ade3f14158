import { randomUUID } from 'node:crypto';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { Connection } from '@temporalio/client';
import Redis from 'ioredis';
import { Client } from 'pg';
import { prometheusGet, type InstantSample } from '../activities/prometheus';
import { parseInfo } from '../activities/redis';
import { runbookSearchAttributeKeys } from '../common/search-attributes';
import { capacityModel, capacitySelector, capacitySeriesNames, readCapacityHistory, storedLabels, type CapacityHistory } from '../scripts/testbed/capacity-history';
import { testbedLayout } from '../scripts/testbed/layout';
import { waitUntil } from '../scripts/testbed/processes';
import { testbedEnv, testbedS3 } from './helpers/testbed';

/** Proof that each server of the test bed is the real thing, not a stand-in. */
describe('test bed systems are real', () => {
  const env = testbedEnv();

  test('PostgreSQL 15: pg_stat_statements records the queries we run, the manual tables are seeded', async () => {
    const db = new Client({ connectionString: env.DATABASE_URL });
    await db.connect();
    try {
      // Column aliases and constants are not part of a statement's identity, so count calls of one fixed statement.
      const probe = 'SELECT count(*) AS testbed_probe FROM storyboards WHERE project_id = $1';
      const callsOf = async () => {
        const { rows } = await db.query<{ calls: string }>('SELECT sum(calls) AS calls FROM pg_stat_statements WHERE query = $1', [probe]);
        return Number(rows[0]?.calls ?? 0);
      };
      const before = await callsOf();
      for (let i = 0; i < 3; i++) await db.query(probe, [i]);
      expect(await callsOf()).toBe(before + 3);
      const version = await db.query<{ server_version_num: string }>('SHOW server_version_num');
      expect(Number(version.rows[0]!.server_version_num)).toBeGreaterThanOrEqual(150000);
      const counts = await db.query<{ table: string; n: string }>(
        `SELECT 'users' AS table, count(*) AS n FROM users UNION ALL SELECT 'projects', count(*) FROM projects
         UNION ALL SELECT 'storyboards', count(*) FROM storyboards UNION ALL SELECT 'characters', count(*) FROM characters
         UNION ALL SELECT 'stale sessions', count(*) FROM sessions WHERE expires_at < now() - interval '7 days'`,
      );
      for (const row of counts.rows) expect(Number(row.n)).toBeGreaterThan(0);
    } finally {
      await db.end();
    }
  });

  test('Redis 7: INFO memory answers with numbers that move when data is written', async () => {
    const redis = new Redis(env.TESTBED_REDIS_ADMIN_URL!);
    const prefix = `probe:${randomUUID()}:`;
    try {
      const before = parseInfo(await redis.info('memory'));
      expect(Number(before.used_memory)).toBeGreaterThan(0);
      const server = parseInfo(await redis.info('server'));
      expect(server.redis_version).toMatch(/^7\./);
      const pipeline = redis.pipeline();
      for (let i = 0; i < 2000; i++) pipeline.set(`${prefix}${i}`, 'x'.repeat(512));
      await pipeline.exec();
      const after = parseInfo(await redis.info('memory'));
      expect(Number(after.used_memory)).toBeGreaterThan(Number(before.used_memory) + 2000 * 512);
    } finally {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        if (keys.length > 0) await redis.unlink(...keys);
        cursor = next;
      } while (cursor !== '0');
      redis.disconnect();
    }
  });

  describe('S3 (SeaweedFS)', () => {
    const s3 = testbedS3();
    const Bucket = env.S3_BUCKET!;
    afterAll(() => s3.destroy());

    test('multipart upload assembles the parts', async () => {
      const Key = `runbooks/test/multipart-${randomUUID()}.bin`;
      const part1 = Buffer.alloc(5 * 1024 * 1024, 'a');
      const part2 = Buffer.from('tail of the object');
      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key }));
      const uploaded = [];
      for (const [index, Body] of [part1, part2].entries()) {
        const { ETag } = await s3.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: index + 1, Body }));
        uploaded.push({ ETag, PartNumber: index + 1 });
      }
      await s3.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: uploaded } }));
      const head = await s3.send(new HeadObjectCommand({ Bucket, Key }));
      expect(head.ContentLength).toBe(part1.length + part2.length);
      const body = Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket, Key, Range: `bytes=${part1.length}-` }))).Body!.transformToByteArray());
      expect(body.toString()).toBe('tail of the object');
      await s3.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: [{ Key }] } }));
    });

    test('ListObjectsV2 paginates with continuation tokens', async () => {
      const prefix = `runbooks/test/pages-${randomUUID()}/`;
      const keys = Array.from({ length: 7 }, (_, i) => `${prefix}object-${i}`);
      await Promise.all(keys.map((Key) => s3.send(new PutObjectCommand({ Bucket, Key, Body: Key }))));
      const seen: string[] = [];
      let ContinuationToken: string | undefined;
      let pages = 0;
      do {
        const page = await s3.send(new ListObjectsV2Command({ Bucket, Prefix: prefix, MaxKeys: 3, ContinuationToken }));
        pages++;
        seen.push(...(page.Contents ?? []).map((o) => o.Key!));
        ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (ContinuationToken);
      expect(pages).toBe(3);
      expect(seen.sort()).toEqual([...keys].sort());
      await s3.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: keys.map((Key) => ({ Key })) } }));
    });

    test('the backup bucket holds real pg_dump output under database/', async () => {
      const listing = await s3.send(new ListObjectsV2Command({ Bucket, Prefix: 'database/' }));
      const keys = (listing.Contents ?? []).map((o) => o.Key!);
      expect(keys).toContain('database/latest.sql');
      expect(keys.filter((k) => /database\/short_drama_prod_\d{4}-\d{2}-\d{2}\.(sql|dump)$/.test(k)).length).toBeGreaterThanOrEqual(3);
      const latest = await (await s3.send(new GetObjectCommand({ Bucket, Key: 'database/latest.sql' }))).Body!.transformToString();
      expect(latest).toContain('-- PostgreSQL database dump');
      expect(latest).toContain('CREATE TABLE public.sessions');
      const custom = keys.find((k) => k.endsWith('.dump'))!;
      const header = Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket, Key: custom, Range: 'bytes=0-4' }))).Body!.transformToByteArray());
      expect(header.toString()).toBe('PGDMP');
    });
  });

  test('Prometheus 2.42 scrapes real targets and answers PromQL with series', async () => {
    const info = await prometheusGet<{ version: string }>(env.PROMETHEUS_URL!, 'api/v1/status/buildinfo', {}, 5000);
    expect(info.version).toMatch(/^2\.42\./);
    let samples: InstantSample[] = [];
    await waitUntil('a scrape of the Temporal server', async () => {
      samples = (await prometheusGet<{ result: InstantSample[] }>(env.PROMETHEUS_URL!, 'api/v1/query', { query: 'up{job="temporal"} == 1' }, 5000)).result;
      return samples.length > 0;
    });
    expect(samples[0]!.metric.job).toBe('temporal');
    await expect(prometheusGet(env.PROMETHEUS_URL!, 'api/v1/query', { query: 'rate(' }, 5000)).rejects.toThrow(/bad_data/);
  });

  test('Alertmanager 0.25: single node (no cluster), one webhook receiver, the alert bridge on its test bed port, the token not in its config', async () => {
    const status = (await (await fetch(`${env.TESTBED_ALERTMANAGER_URL}/api/v2/status`)).json()) as { versionInfo: { version: string }; cluster: { status: string }; config: { original: string } };
    expect(status.versionInfo.version).toMatch(/^0\.25\./);
    expect(status.cluster.status).toBe('disabled');
    expect(status.config.original).toContain(`url: http://${env.ALERT_BRIDGE_LISTEN}/alertmanager`);
    expect(status.config.original).not.toContain(env.ALERT_BRIDGE_TOKEN!);
    // Its API takes alerts as Prometheus sends them (an empty list is a valid post).
    const post = await fetch(`${env.TESTBED_ALERTMANAGER_URL}/api/v2/alerts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '[]' });
    expect(post.status).toBe(200);
  });

  describe('Prometheus capacity history (monthly review: 30-day trends)', () => {
    const { msPerDay, capacitySeries, value } = capacityModel;
    let history: CapacityHistory;
    beforeAll(() => {
      history = readCapacityHistory(testbedLayout())!;
      expect(history).toBeDefined();
    });
    type RangeSeries = { metric: Record<string, string>; values: Array<[number, string]> };
    const rangeQuery = (query: string, startMs: number, endMs: number, stepSeconds: number) =>
      prometheusGet<{ result: RangeSeries[] }>(env.PROMETHEUS_URL!, 'api/v1/query_range', { query, start: String(startMs / 1000), end: String(endMs / 1000), step: String(stepSeconds) }, 10_000);
    const ms = (seconds: number) => Math.round(seconds * 1000);

    test.each(capacitySeriesNames)('%s: one series over the last 30 days, older than 29 days, every backfilled sample on the model', async (name) => {
      const series = capacitySeries[name];
      const now = Date.now();
      const last30Days = (await rangeQuery(capacitySelector(name), now - 30 * msPerDay, now, 3600)).result;
      // One series: the backfilled history and the live scrapes carry the same labels.
      expect(last30Days).toHaveLength(1);
      expect(last30Days[0]!.metric).toEqual({ __name__: series.metric, ...storedLabels(name, history) });
      expect(ms(last30Days[0]!.values[0]![0])).toBeLessThan(now - 29 * msPerDay);

      // Evaluated exactly at the backfill's sample times, each point is that sample.
      const step = capacityModel.sampleIntervalSeconds;
      const [backfilled] = (await rangeQuery(capacitySelector(name), history.originMs, history.endMs, step)).result;
      expect(backfilled!.values).toHaveLength(capacityModel.historyDays * (86_400 / step) + 1);
      const offModel = backfilled!.values.filter(([t, v]) => Number(v) !== value(name, ms(t), history.originMs));
      expect(offModel).toEqual([]);

      // The known slope, from the stored samples: day-to-day differences at the same time of day cancel the daily wave.
      const at = (day: number) => Number(backfilled!.values[day * (86_400 / step)]![1]);
      const days = capacityModel.historyDays;
      const slope =
        series.type === 'counter'
          ? // The mean rate over a whole day (the wave integrates to zero), last day against first.
            ((at(days) - at(days - 1)) / 86_400 - (at(1) - at(0)) / 86_400) / (days - 1)
          : (at(days) - at(0)) / days;
      expect(slope).toBeCloseTo(series.slopePerDay, 6);
    });

    test.each(capacitySeriesNames)('%s: an instant query answers the current value of the model (live scrapes continue the history)', async (name) => {
      const instant = async (query: string) => (await prometheusGet<{ result: InstantSample[] }>(env.PROMETHEUS_URL!, 'api/v1/query', { query }, 5000)).result[0]?.value;
      // A sample newer than the history's end comes from the capacity-metrics target, not the backfill.
      await waitUntil(`a live scrape of ${name}`, async () => Number((await instant(`timestamp(${capacitySelector(name)})`))?.[1] ?? 0) * 1000 > history.endMs);
      const [evaluatedAt, current] = (await instant(capacitySelector(name)))!;
      // The sample is one scrape (2 s) old at most: allow what the model moves in 10 s.
      const expected = value(name, ms(evaluatedAt), history.originMs);
      const tenSecondsEarlier = value(name, ms(evaluatedAt) - 10_000, history.originMs);
      expect(Math.abs(Number(current) - expected)).toBeLessThanOrEqual(Math.abs(expected - tenSecondsEarlier) + 1);
    });
  });

  test('Temporal dev server has the runbook search attributes registered as Keyword', async () => {
    const connection = await Connection.connect({ address: env.TEMPORAL_ADDRESS });
    try {
      const response = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
      for (const key of runbookSearchAttributeKeys) {
        expect(response.customAttributes?.[key.name]).toBe(2 /* INDEXED_VALUE_TYPE_KEYWORD */);
      }
    } finally {
      await connection.close();
    }
  });
});
