import { execFileSync } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { DeleteObjectsCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { Runtime } from '@temporalio/worker';
import { createActivities } from '../../activities';
import type { PostIncidentReviewResult } from '../../workflows/post-incident-review';
import { buildDependencies } from '../../workers/dependencies';
import { onKwokNode } from '../../scripts/testbed/kubernetes-seed';
import { waitUntil } from '../../scripts/testbed/processes';
import { recordHistory } from '../helpers/histories';
import { unique } from '../helpers/kube-activity-scratch';
import { adminKubeConfig, kubernetesNamespace as ns, waitForRollout } from '../helpers/kube-cluster';
import { historyText, readBucketText, terminateRuns } from '../helpers/runbook-runs';
import { testbedConfig, testbedEnv, testbedS3 } from '../helpers/testbed';
import { withRunbooks } from '../helpers/worker';

const env = testbedEnv();
const Bucket = env.S3_BUCKET!;
const auditLog = env.KUBERNETES_AUDIT_LOG!;

interface AuditLine {
  stage: string;
  level: string;
  verb: string;
  user: { username: string };
  impersonatedUser?: { username: string };
  objectRef: { resource: string; namespace?: string; name?: string; apiGroup?: string; subresource?: string };
  stageTimestamp: string;
  requestObject?: unknown;
  responseObject?: unknown;
}

/** The apiserver's audit events as they are in its log now (JSON lines; a torn last line skipped). */
function auditEvents(): AuditLine[] {
  return readFileSync(auditLog, 'utf8')
    .split('\n')
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as AuditLine];
      } catch {
        return [];
      }
    });
}

/**
 * 事后分析's API audit evidence (审计日志) against the test bed's kube-apiserver, which runs with
 * deploy/kubernetes/audit-policy.yaml (the manual's policy, then workloads) and writes its log to
 * the state dir: people change things through kubectl as themselves (alice and bob, impersonated
 * by the admin, as an SSO proxy does), a Secret among them, and the review names them.
 */
describe('postIncidentReview: API audit evidence', () => {
  const kc = adminKubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const s3 = testbedS3();
  const deployment = unique('pir-audit');
  const secretName = unique('pir-audit-secret');
  const markers = [`audit-${randomBytes(16).toString('hex')}`, `audit-${randomBytes(16).toString('hex')}`];
  const forbidden = markers.flatMap((v) => [v, Buffer.from(v).toString('base64')]);
  // A literal credential in the pods' env: the manual's policy logs pods with their bodies, the evidence must not.
  const envSentinel = `SENTINEL${randomBytes(12).toString('hex')}`;
  const workflowIds: string[] = [];
  const evidenceKeys: string[] = [];
  const kubectlAs = (user: string, ...args: string[]) =>
    execFileSync(env.TESTBED_KUBECTL!, ['--kubeconfig', env.TESTBED_KUBECONFIG_ADMIN!, `--as=${user}`, '--as-group=system:masters', '-n', ns, ...args], { encoding: 'utf8' });

  beforeAll(async () => {
    expect(auditLog).toMatch(/\/kubernetes\/audit\/audit\.log$/);
    await apps.createNamespacedDeployment(ns, {
      metadata: { name: deployment, labels: { 'runbook-test/scratch': 'true' } },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: deployment } },
        template: {
          metadata: { labels: { app: deployment } },
          spec: {
            ...onKwokNode,
            containers: [{ name: 'app', image: 'registry.invalid/app:1', env: [{ name: 'DATABASE_URL', value: `postgres://app:${envSentinel}@postgres:5432/short_drama_prod` }] }],
          },
        },
      },
    });
    await waitForRollout(kc, ns, deployment);
  });

  afterAll(async () => {
    await terminateRuns(testbedConfig().temporal, workflowIds);
    await apps.deleteNamespacedDeployment(deployment, ns).catch(() => undefined);
    await core.deleteNamespacedSecret(secretName, ns).catch(() => undefined);
    if (evidenceKeys.length) await s3.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: evidenceKeys.map((Key) => ({ Key })) } }));
    s3.destroy();
  });

  test("a person's rollout, a Secret written and a scale are in the report's timeline by who and when; the events are in S3; no Secret value anywhere", async () => {
    const config = testbedConfig();
    // People at work before the incident: alice rolls out and writes a Secret, bob scales.
    kubectlAs('alice', 'rollout', 'restart', `deployment/${deployment}`);
    await waitForRollout(kc, ns, deployment);
    kubectlAs('alice', 'create', 'secret', 'generic', secretName, `--from-literal=API_TOKEN=${markers[0]}`);
    kubectlAs('alice', 'patch', 'secret', secretName, '-p', JSON.stringify({ stringData: { API_TOKEN: markers[1] } }));
    kubectlAs('bob', 'scale', `deployment/${deployment}`, '--replicas=2');
    // The apiserver writes an event once the request completes: the run starts once the last one is in the log.
    await waitUntil(
      "bob's scale in the audit log",
      () => auditEvents().some((e) => e.stage === 'ResponseComplete' && e.impersonatedUser?.username === 'bob' && e.objectRef.name === deployment && e.objectRef.subresource === 'scale'),
      30_000,
    );

    // The policy logs Secrets at Metadata: neither value was ever written to the log.
    const raw = readFileSync(auditLog, 'utf8');
    for (const value of forbidden) expect(raw.includes(value) ? value : undefined).toBeUndefined();
    expect(raw).toContain(secretName);
    // Pods with their bodies (RequestResponse): the env's literal value is in the log, so the evidence's scrub below is tested.
    expect(raw).toContain(envSentinel);

    const incidentId = `INC-${randomUUID().slice(0, 8)}`;
    const { result, historyJson, history, historyBytes } = await withRunbooks(config, async ({ runbooks, client }) => {
      const { workflowId } = await runbooks.startRunbook('postIncidentReview', { incidentId, sinceMinutes: 10, severity: 'P1' }, { startedBy: 'erin' });
      workflowIds.push(workflowId);
      const finished = await runbooks.waitForResult<PostIncidentReviewResult>(workflowId);
      const handle = client.workflow.getHandle(workflowId);
      await recordHistory(handle, 'audit-evidence');
      const fetched = await handle.fetchHistory();
      return { result: finished, historyJson: JSON.stringify(fetched), history: historyText(fetched).join('\n'), historyBytes: temporal.api.history.v1.History.encode(fetched).finish().length };
    });
    evidenceKeys.push(...result.evidence.map((e) => e.key));

    // Who changed which object: people only, each with when; the rollout tied to its new ReplicaSet.
    expect(result.audit).toMatchObject({ configured: true, truncated: false });
    // This test's objects (a run before may have left changes of its own in the window).
    const changes = result.audit!.changes.filter((c) => (c.user === 'alice' || c.user === 'bob') && (c.name === deployment || c.name === secretName));
    expect(changes.map((c) => [c.user, c.verb, c.resource, c.name, c.subresource])).toEqual([
      ['alice', 'patch', 'deployments.apps', deployment, undefined],
      ['alice', 'create', 'secrets', secretName, undefined],
      ['alice', 'patch', 'secrets', secretName, undefined],
      ['bob', 'patch', 'deployments.apps', deployment, 'scale'],
    ]);
    const rollout = changes[0]!;
    expect(rollout).toMatchObject({ via: 'runbook-testbed-admin', userAgent: expect.stringMatching(/^kubectl\//), rollout: expect.stringMatching(new RegExp(`^${deployment}-[a-z0-9]+$`)) });
    const replicaSets = (await apps.listNamespacedReplicaSet(ns)).body.items.map((rs) => rs.metadata!.name!);
    expect(replicaSets).toContain(rollout.rollout);
    expect(result.audit!.changes.every((c) => !c.user.startsWith('system:'))).toBe(true);
    expect(result.audit!.systemChanges).toBeGreaterThan(0); // the controllers' ReplicaSets and pods: counted, not listed
    expect(Date.parse(rollout.at)).toBeGreaterThanOrEqual(Date.parse(result.window.since));

    // The events in S3: the namespace's, in the window, ResponseComplete only, with the digest the history names.
    const item = result.evidence.find((e) => e.key.endsWith('/audit-events.jsonl'))!;
    expect(item.what).toMatch(/^API audit events of short-drama-prod: \d+, \d+ changes by people or other users \(Secrets: metadata only\)$/);
    const got = await s3.send(new GetObjectCommand({ Bucket, Key: item.key }));
    const body = Buffer.from(await got.Body!.transformToByteArray());
    expect({ size: body.length, sha256: createHash('sha256').update(body).digest('hex') }).toEqual({ size: item.size, sha256: item.sha256 });
    expect(history).toContain(item.sha256);
    const text = body.toString('utf8');
    const lines = text
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as AuditLine);
    expect(lines).toHaveLength(result.audit!.events);
    for (const e of lines) {
      expect(e.stage).toBe('ResponseComplete');
      expect(e.objectRef.namespace).toBe(ns);
      expect(Date.parse(e.stageTimestamp)).toBeGreaterThanOrEqual(Date.parse(result.window.since));
      expect(Date.parse(e.stageTimestamp)).toBeLessThanOrEqual(Date.parse(result.window.until));
      if (e.objectRef.resource === 'secrets') expect([e.level, e.requestObject, e.responseObject]).toEqual(['Metadata', undefined, undefined]);
    }
    // The system noise stays in the evidence: the Deployment controller's ReplicaSet of alice's rollout.
    expect(lines).toContainEqual(
      expect.objectContaining({
        verb: 'create',
        user: expect.objectContaining({ username: 'system:serviceaccount:kube-system:deployment-controller' }),
        objectRef: expect.objectContaining({ name: rollout.rollout }),
      }),
    );

    // The report: the rollout stands in the timeline before the run itself, and in the root cause's signals.
    const markdown = await readBucketText(result.report!.markdownKey);
    const json = await readBucketText(result.report!.jsonKey);
    const rows = markdown.split('\n').filter((l) => l.startsWith('| 20'));
    const rolloutRow = rows.findIndex((l) =>
      l.includes(`| changed (audit log) | patched deployments.apps/${deployment} | alice | rollout: new ReplicaSet ${rollout.rollout}, impersonated by runbook-testbed-admin, kubectl/`),
    );
    expect(rolloutRow).toBeGreaterThanOrEqual(0);
    expect(rolloutRow).toBeLessThan(rows.findIndex((l) => l.includes('| started |')));
    expect(rows.filter((l) => l.includes('| changed (audit log) |'))).toContainEqual(expect.stringContaining(`| changed (audit log) | patched deployments.apps/${deployment} (scale) | bob |`));
    expect(markdown).toContain(`${rollout.at.replace(/\.\d{3}Z$/, 'Z')} alice patched deployments.apps/${deployment} (rollout: new ReplicaSet ${rollout.rollout}`);
    expect(markdown).toMatch(/Signals in the window: changes by people in the window \(API audit log\): /);
    expect(markdown).toMatch(/\| read \| API audit events of namespace short-drama-prod[^|]*\|[^|]*\| \d+ audit events from \d+ files?: \d+ changes by people or other users/);
    expect(markdown).toContain(`\`${item.key}\` (${item.size} bytes, sha256 ${item.sha256.slice(0, 16)})`);

    // No Secret value in the evidence, the report or the history (payloads decoded, and as the history's JSON).
    for (const t of [text, markdown, json, history, historyJson]) for (const value of [...forbidden, envSentinel]) expect(t.includes(value) ? value : undefined).toBeUndefined();
    // The pods' bodies are there, their literal env values dropped as in every evidence.
    const podCreated = lines.find(
      (e) =>
        e.objectRef.resource === 'pods' &&
        !e.objectRef.subresource &&
        e.verb === 'create' &&
        (e.responseObject as { metadata?: { generateName?: string } } | undefined)?.metadata?.generateName === `${rollout.rollout}-`,
    );
    expect(podCreated).toMatchObject({ level: 'RequestResponse', responseObject: { spec: { containers: [{ env: [{ name: 'DATABASE_URL', value: '[redacted]' }] }] } } });
    // The history holds the changes named (at most 20), not the events: it stays small.
    expect(historyBytes).toBeLessThan(64 * 1024);
  });

  test('without KUBERNETES_AUDIT_LOG the report says audit evidence is not configured; a configured log that is missing is named, not an error', async () => {
    const results = await withRunbooks(testbedConfig({ KUBERNETES_AUDIT_LOG: undefined }), async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('postIncidentReview', { incidentId: `INC-${randomUUID().slice(0, 8)}`, sinceMinutes: 5 }, { startedBy: 'erin' });
      workflowIds.push(workflowId);
      return runbooks.waitForResult<PostIncidentReviewResult>(workflowId);
    });
    evidenceKeys.push(...results.evidence.map((e) => e.key));
    expect(results.audit).toEqual({ configured: false, events: 0, truncated: false, changesTotal: 0, systemChanges: 0, changes: [] });
    expect(results.evidence.some((e) => e.key.endsWith('audit-events.jsonl'))).toBe(false);
    expect(results.summary).toContain('API audit evidence not configured');
    expect(await readBucketText(results.report!.markdownKey)).toContain('API audit evidence not configured (KUBERNETES_AUDIT_LOG): no audit events collected');

    const missing = `${auditLog}.missing-${randomBytes(4).toString('hex')}`;
    const built = buildDependencies(testbedConfig({ KUBERNETES_AUDIT_LOG: missing }), Runtime.instance().logger);
    try {
      const activities = createActivities(built.deps);
      const until = new Date();
      const window = { since: new Date(until.getTime() - 60_000).toISOString(), until: until.toISOString() };
      const found = await activities.collectAuditEventsToEvidence({ namespace: ns, ...window, key: `evidence/test/${randomUUID()}/audit-events.jsonl` });
      expect(found).toMatchObject({ configured: true, source: missing, events: 0 });
      expect(found.unavailable).toBe(`${missing} does not exist (is the apiserver's --audit-log-path this file, and is it mounted here?)`);
      expect(found.evidence).toBeUndefined();

      // Bad input: non-retryable, with a sentence that says what is wrong.
      const failureOf = (p: Promise<unknown>) =>
        p.then(
          () => undefined,
          (err: unknown) => err as ApplicationFailure,
        );
      const bad = await failureOf(activities.collectAuditEventsToEvidence({ namespace: ns, since: 'an hour ago', until: window.until, key: 'evidence/x.jsonl' }));
      expect(bad).toBeInstanceOf(ApplicationFailure);
      expect([bad!.type, bad!.nonRetryable, bad!.message]).toEqual(['InvalidInput', true, 'since: expected an ISO time, got "an hour ago"']);
      const backwards = await failureOf(activities.collectAuditEventsToEvidence({ namespace: ns, since: window.until, until: window.since, key: 'evidence/x.jsonl' }));
      expect([backwards!.type, backwards!.nonRetryable, backwards!.message]).toEqual(['InvalidInput', true, 'until must be after since, at most 7 days later']);
      const system = await failureOf(activities.collectAuditEventsToEvidence({ namespace: 'kube-system', ...window, key: 'evidence/x.jsonl' }));
      expect([system!.type, system!.nonRetryable, system!.message]).toEqual(['Refused', true, 'namespace kube-system is never touched by runbooks']);
      const key = await failureOf(activities.collectAuditEventsToEvidence({ namespace: ns, ...window, key: '../outside.jsonl' }));
      expect([key!.type, key!.nonRetryable]).toEqual(['InvalidInput', true]);
    } finally {
      await built.close();
    }
  });
});
