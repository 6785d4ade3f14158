import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import type { preflight } from '../workflows';
import type { PreflightResult } from '../common/preflight';
import { waitUntil } from '../scripts/testbed/processes';
import { parseJsonLines, startScript } from './helpers/process-output';
import { testbedEnv } from './helpers/testbed';

/** The worker as it runs in production: its own process, configured from the environment. */
describe('worker process (workers/main.ts)', () => {
  const env = testbedEnv();

  test('logs JSON lines with workflow and run ids, serves Prometheus metrics, and stops gracefully on SIGTERM', async () => {
    const taskQueue = `worker-process-${randomUUID()}`;
    const metricsPort = 17298;
    const worker = startScript('workers/main.ts', {
      ...process.env,
      ...env,
      TEMPORAL_TASK_QUEUE: taskQueue,
      WORKER_METRICS_HOST: '127.0.0.1',
      WORKER_METRICS_PORT: String(metricsPort),
      WORKER_HEALTH_LISTEN: '127.0.0.1:0',
    });
    try {
      const ready = JSON.parse(await worker.waitForLine((line) => line.includes('"worker ready"'))) as { health: string };
      // The probes of deploy/kubernetes: ready once polling, alive.
      await waitUntil('the worker ready', async () => (await fetch(ready.health)).status === 200);
      expect(await (await fetch(ready.health)).json()).toEqual({ ok: true, state: 'RUNNING' });
      expect((await fetch(ready.health.replace(/readyz$/, 'livez'))).status).toBe(200);
      const connection = await Connection.connect({ address: env.TEMPORAL_ADDRESS });
      const client = new Client({ connection });
      const handle = await client.workflow.start<typeof preflight>('preflight', { taskQueue, workflowId: `worker-process-${taskQueue}`, args: [{ targets: ['postgres', 'redis'] }] });
      const result: PreflightResult = await handle.result();
      await connection.close();
      expect(result.ok).toBe(true);
      // The test bed's demo approvers have keys: preflight says decisions are proven.
      expect(result.approvals).toMatchObject({ verified: true, detail: expect.stringMatching(/^signed decisions required; keys: alice \(person\) SHA256:/) });
      expect(worker.lines.some((line) => line.includes('APPROVALS ARE UNVERIFIED'))).toBe(false);

      const finished = await worker.waitForLine((line) => line.includes('preflight finished'));
      expect(JSON.parse(finished)).toMatchObject({ level: 'INFO', workflowId: handle.workflowId, runId: handle.firstExecutionRunId, workflowType: 'preflight' });
      const records = parseJsonLines(worker.lines);
      expect(records.length).toBe(worker.lines.filter((l) => l.trim()).length); // every line is JSON
      for (const record of records.filter((r) => r.workflowId !== undefined)) expect(record.runId).toEqual(expect.any(String));
      // No credential of the test bed reaches the logs.
      for (const secret of [env.TESTBED_POSTGRES_PASSWORD!, env.TESTBED_WORKER_DATABASE_PASSWORD!, env.TESTBED_REDIS_PASSWORD!, env.TESTBED_REDIS_WORKER_PASSWORD!, env.S3_SECRET_ACCESS_KEY!]) {
        expect(worker.lines.join('\n')).not.toContain(secret);
      }

      let metrics = '';
      await waitUntil('worker metrics', async () => {
        metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
        return metrics.includes('temporal_workflow_completed');
      });
      expect(metrics).toMatch(new RegExp(`temporal_workflow_completed\\{[^}]*task_queue="${taskQueue}"`));

      worker.child.kill('SIGTERM');
      expect(await worker.exited).toBe(0);
      expect(worker.lines.some((line) => line.includes('"worker stopped"'))).toBe(true);
    } finally {
      if (worker.child.exitCode === null) worker.child.kill('SIGKILL');
    }
  });

  test('without approver keys the worker warns loudly that approvals are unverified', async () => {
    const worker = startScript('workers/main.ts', {
      ...process.env,
      ...env,
      TEMPORAL_TASK_QUEUE: `worker-process-${randomUUID()}`,
      WORKER_METRICS_PORT: '0',
      RUNBOOK_APPROVERS: '[{"id":"bob","roles":["l2"]}]',
    });
    try {
      const warning = JSON.parse(await worker.waitForLine((line) => line.includes('APPROVALS ARE UNVERIFIED')));
      expect(warning).toMatchObject({ level: 'WARN', message: expect.stringMatching(/anyone who can reach Temporal can approve as anyone/) });
    } finally {
      worker.child.kill('SIGKILL');
    }
  });

  test('bad configuration stops the process at once with the field named', async () => {
    const worker = startScript('workers/main.ts', { PATH: process.env.PATH, TEMPORAL_ADDRESS: '127.0.0.1:7233', REDIS_URL: 'http://not-redis' });
    expect(await worker.exited).toBe(2);
    expect(worker.lines).toContain('  - redis.url (env REDIS_URL): expected a redis:// or rediss:// URL');
  });
});
