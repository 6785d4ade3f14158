import { randomUUID } from 'node:crypto';
import { NetworkingV1Api } from '@kubernetes/client-node';
import { Client, Connection } from '@temporalio/client';
import { prometheusGet } from '../activities/prometheus';
import { createRunbookClient, type RunbookClient } from '../client';
import { runbookMetrics } from '../common/runbook-metrics';
import { stableJson } from '../common/stable-json';
import { port, testbedLayout } from '../scripts/testbed/layout';
import { waitUntil } from '../scripts/testbed/processes';
import type { TrafficControlResult } from '../workflows/traffic-control';
import { recordHistory } from './helpers/histories';
import { cachedWorkflowBundleFile } from './helpers/workflow-bundles';
import { workflowBundle } from '../workers/run-worker';
import { dashboardQueries, readDashboard, substitute } from './helpers/grafana-dashboard';
import { unique } from './helpers/kube-activity-scratch';
import { adminKubeConfig } from './helpers/kube-cluster';
import { startScript } from './helpers/process-output';
import { pendingOf, terminateRuns } from './helpers/runbook-runs';
import { testbedConfig, testbedEnv, unsignedTeam } from './helpers/testbed';

const namespace = 'short-drama-prod';

type Sample = { metric: Record<string, string>; value: [number, string] };

/**
 * The worker process (workers/main.ts) on the port the test bed's Prometheus scrapes (job
 * runbook-worker, every 2 s) runs trafficControl on a scratch Ingress: a rate limit approved by a
 * policy, then a restore whose initiator's own approval is refused (four-eyes) before a person
 * approves it; twice, with a scrape between, so rates and increases have two samples. Then every
 * query of deploy/grafana/runbook-dashboard.json, its variables set to this worker's task queue,
 * must return a value above zero from Prometheus.
 */
describe('runbook metrics, scraped by Prometheus, charted by deploy/grafana', () => {
  const env = testbedEnv();
  const networking = adminKubeConfig().makeApiClient(NetworkingV1Api);
  const taskQueue = `worker-metrics-${randomUUID()}`;
  const ingress = unique('metrics-ingress');
  const workflowId = `trafficControl/${namespace}/${ingress}`;
  const policy = 'metrics-drill';

  const instant = async (query: string) => (await prometheusGet<{ result: Sample[] }>(env.PROMETHEUS_URL!, 'api/v1/query', { query }, 5000)).result;
  const ofThisWorker = (metric: string) => instant(`${metric}{job="runbook-worker", taskQueue="${taskQueue}"}`);
  const exported = Object.values(runbookMetrics).map(({ name }) => (name.endsWith('_seconds') ? `${name}_count` : name));

  afterAll(async () => {
    await terminateRuns(testbedConfig().temporal, [workflowId, `lock/${namespace}/${ingress}`]);
    await networking.deleteNamespacedIngress(ingress, namespace).catch(() => undefined); // never made
  });

  /** A rate limit the policy approves, then a restore approved by bob after erin (the initiator) was refused. */
  async function round(runbooks: RunbookClient, rps: number, record?: (workflowId: string) => Promise<void>): Promise<void> {
    await runbooks.startRunbook('trafficControl', { namespace, ingress, action: 'rate-limit', rps, mode: 'execute' }, { startedBy: 'erin' });
    expect((await runbooks.waitForResult<TrafficControlResult>(workflowId)).outcome).toBe('completed');
    await record?.(workflowId);
    await runbooks.startRunbook('trafficControl', { namespace, ingress, action: 'restore', mode: 'execute' }, { startedBy: 'erin' });
    const { planHash } = await pendingOf(runbooks, workflowId, 'restore');
    await expect(runbooks.approve(workflowId, { stepId: 'restore', planHash, approver: 'erin', reason: 'my own' })).rejects.toThrow(/four-eyes rule/);
    await runbooks.approve(workflowId, { stepId: 'restore', planHash, approver: 'bob', reason: 'metrics drill' });
    expect((await runbooks.waitForResult<TrafficControlResult>(workflowId)).outcome).toBe('completed');
  }

  test('approved, auto-approved and refused: counted once each, and every dashboard query returns data', async () => {
    await networking.createNamespacedIngress(namespace, {
      metadata: { name: ingress, labels: { 'runbook-test/scratch': 'true' }, annotations: { 'nginx.ingress.kubernetes.io/limit-rps': '100' } },
      spec: {
        ingressClassName: 'nginx',
        rules: [{ host: `${ingress}.example`, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'short-drama-app', port: { number: 80 } } } }] } }],
      },
    });
    const worker = startScript('workers/main.ts', {
      ...process.env,
      ...env,
      // The bundle the in-process test workers share: no webpack at this worker's start.
      WORKFLOW_BUNDLE: await cachedWorkflowBundleFile(workflowBundle.workflowsPath, workflowBundle.interceptors.workflowModules),
      TEMPORAL_TASK_QUEUE: taskQueue,
      WORKER_METRICS_HOST: '127.0.0.1',
      WORKER_METRICS_PORT: String(port(testbedLayout(), 'testWorkerMetrics')),
      RUNBOOK_APPROVERS: JSON.stringify(unsignedTeam),
      APPROVAL_POLICIES: JSON.stringify([{ name: policy, runbooks: ['trafficControl'], steps: ['rate-limit'], onlyScheduled: false }]),
    });
    const connection = await Connection.connect({ address: env.TEMPORAL_ADDRESS });
    try {
      await worker.waitForLine((line) => line.includes('"worker ready"'));
      const temporal = new Client({ connection });
      const runbooks = createRunbookClient({ client: temporal, taskQueue });
      // The policy's step planned once, under the lock: a history for the replay test.
      await round(runbooks, 40, (id) => recordHistory(temporal.workflow.getHandle(id), 'rate-limit-policy-approved'));
      // The second round's increments must come after a scrape that saw the first: rate() and increase() need two samples.
      await waitUntil('Prometheus to scrape every runbook_* metric of the first round', async () => (await Promise.all(exported.map(ofThisWorker))).every((r) => r.length > 0), 30_000);
      await round(runbooks, 30);

      // Each fact once: 4 runs, 2 policy approvals, 2 refusals, 2 waits for a person, 4 first changes.
      const counts = async () =>
        Object.fromEntries(await Promise.all(exported.map(async (name) => [name, (await ofThisWorker(name)).map((s) => ({ ...labelsOf(s.metric), value: Number(s.value[1]) }))] as const)));
      const expected = {
        [runbookMetrics.runsStarted.name]: [{ runbook: 'trafficControl', value: 4 }],
        [runbookMetrics.runsFinished.name]: [{ runbook: 'trafficControl', outcome: 'completed', value: 4 }],
        [`${runbookMetrics.approvalWait.name}_count`]: [{ runbook: 'trafficControl', tier: 'l2', decision: 'approved', value: 2 }],
        [`${runbookMetrics.firstChange.name}_count`]: [{ runbook: 'trafficControl', value: 4 }],
        [runbookMetrics.autoApprovals.name]: [{ runbook: 'trafficControl', policy, value: 2 }],
        [runbookMetrics.refusals.name]: [{ runbook: 'trafficControl', reason: 'four-eyes', channel: 'update', value: 2 }],
      };
      // stableJson, not isDeepStrictEqual: arrays from fetch's realm are not jest's.
      let scraped: Awaited<ReturnType<typeof counts>> | undefined;
      await waitUntil('Prometheus to scrape the second round', async () => stableJson((scraped = await counts())) === stableJson(expected), 30_000).catch(() => undefined);
      expect(scraped).toEqual(expected);

      const variables = { job: 'runbook-worker', task_queue: taskQueue, runbook: 'trafficControl', __range: '1h', __rate_interval: '5m' };
      const queries = dashboardQueries(readDashboard()).map((q) => ({ ...q, expr: substitute(q.expr, variables) }));
      let withoutData: string[] = [];
      await waitUntil(
        'every dashboard query to return data',
        async () => {
          const answers = await Promise.all(queries.map(async (q) => ({ q, samples: await instant(q.expr) })));
          withoutData = answers.filter(({ samples }) => !samples.some((s) => Number(s.value[1]) > 0)).map(({ q }) => `${q.panel} (${q.refId}): ${q.expr}`);
          return withoutData.length === 0;
        },
        30_000,
      ).catch(() => undefined);
      expect(withoutData).toEqual([]);
    } finally {
      await connection.close();
      worker.child.kill('SIGTERM');
      await worker.exited;
    }
  });
});

/** A sample's own labels, without those Prometheus and the SDK add. */
function labelsOf(metric: Record<string, string>): Record<string, string> {
  const { __name__: _name, job: _job, instance: _instance, namespace: _namespace, taskQueue: _taskQueue, workflowType: _workflowType, ...own } = metric;
  return own;
}
