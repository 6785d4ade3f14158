import { createHash, randomUUID } from 'node:crypto';
import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { activityHarness, type ActivityHarness } from '../helpers/activity-context';
import { failureOf } from '../helpers/failures';
import { deleteDeployment, restartableScript, scratchApp, unique } from '../helpers/kube-activity-scratch';
import { adminKubeConfig, kubernetesNamespace as ns } from '../helpers/kube-cluster';
import { podLogging } from '../helpers/kube-pods';
import { closedPort, testbedEnv, testbedS3 } from '../helpers/testbed';

/**
 * scanLogsToEvidence (the checklists' log checks) against the real control plane and SeaweedFS:
 * a scratch Deployment on the real node whose container prints a log of its own; evidence under a
 * unique runbooks/test-… folder.
 */
const Bucket = testbedEnv().S3_BUCKET!;
const s3 = testbedS3();
const kc = adminKubeConfig();
const folder = `test-logscan-${randomUUID()}/`;
const deployment = unique('logscan');
let pod = '';
let h: ActivityHarness;

const lines = ['GET /health 200 1ms', 'ERROR database timeout after 5000ms', 'login failed for user admin', 'GET /api 403 3ms', `ERROR ${'x'.repeat(500)}`];
const patterns = { errors: { source: '\\bERROR\\b' }, logins: { source: 'LOGIN FAILED', flags: 'i' } };

async function keysUnder(prefix: string): Promise<string[]> {
  const listed = await s3.send(new ListObjectsV2Command({ Bucket, Prefix: `runbooks/${prefix}` }));
  return (listed.Contents ?? []).map((o) => o.Key!);
}

beforeAll(async () => {
  h = activityHarness();
  await scratchApp(kc, deployment, { script: restartableScript(lines) });
  pod = await podLogging(kc, ns, `app=${deployment}`, lines);
});

afterAll(async () => {
  await deleteDeployment(kc, deployment);
  const keys = (await keysUnder(folder)).map((Key) => ({ Key }));
  if (keys.length) await s3.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: keys } }));
  s3.destroy();
  await h?.close();
});

test('the log goes to S3 evidence whole; the answer holds counts, the first and last match cut to 200 characters, and the key; a retry writes the same object', async () => {
  const input = { namespace: ns, deployment, tailLines: 100, key: `${folder}app.log`, patterns };
  const scan = await h.run('scanLogsToEvidence', input);
  expect(scan).toMatchObject({ pod, lines: 5, truncated: false });
  expect(scan.matches).toEqual({
    errors: { count: 2, first: 'ERROR database timeout after 5000ms', last: `ERROR ${'x'.repeat(194)}` },
    logins: { count: 1, first: 'login failed for user admin', last: 'login failed for user admin' },
  });
  expect(JSON.stringify(scan)).not.toContain('GET /health');
  const stored = await s3.send(new GetObjectCommand({ Bucket, Key: scan.evidence.key }));
  const body = await stored.Body!.transformToString();
  expect(scan.evidence.key).toBe(`runbooks/${folder}app.log`);
  expect(body.split('\n').filter(Boolean)).toEqual(lines);
  expect(scan.evidence.sha256).toBe(createHash('sha256').update(body).digest('hex'));
  expect(await h.run('scanLogsToEvidence', input)).toEqual(scan);
  expect(await keysUnder(folder)).toEqual([scan.evidence.key]);
});

test.each([
  ['a key leaving the evidence prefix', { key: `${folder}../../database/latest.sql` }, /key: expected no "\.\." segment/],
  ['an absolute key', { key: `/${folder}x.log` }, /key: expected a relative key/],
  ['a pattern that is no regular expression', { patterns: { errors: { source: '(ERROR' } } }, /pattern errors is not a regular expression/],
  ['a stateful (global) flag', { patterns: { errors: { source: 'ERROR', flags: 'g' } } }, /patterns\.errors\.flags: expected flags among i, m, s, u/],
  ['a field it does not know', { command: 'rm -rf /' }, /Unrecognized key/],
  ['maxBytes beyond 1 MiB', { maxBytes: 2_000_000 }, /maxBytes/],
])('refused, non-retryable, nothing written: %s', async (_what, change, message) => {
  const bad = { namespace: ns, deployment, key: `${folder}refused/app.log`, patterns, ...change };
  const failure = await failureOf(h.run('scanLogsToEvidence', bad as never));
  expect([failure.type, failure.nonRetryable]).toEqual(['InvalidInput', true]);
  expect(failure.message).toMatch(message);
  expect(await keysUnder(`${folder}refused/`)).toEqual([]);
});

test('S3 down while the log is written: a retryable failure, nothing written; once S3 is back the retry writes the log', async () => {
  const down = activityHarness({ S3_ENDPOINT: `http://127.0.0.1:${closedPort}` });
  const input = { namespace: ns, deployment, key: `${folder}outage/app.log`, patterns };
  try {
    const failure = await failureOf(down.run('scanLogsToEvidence', input));
    expect(failure.nonRetryable).toBeFalsy();
  } finally {
    await down.close();
  }
  expect(await keysUnder(`${folder}outage/`)).toEqual([]);
  const scan = await h.run('scanLogsToEvidence', input);
  expect(await keysUnder(`${folder}outage/`)).toEqual([scan.evidence.key]);
});
