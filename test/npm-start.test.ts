import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { preflight } from '../workflows';
import { allServices, down, nodeOnlyServices } from '../scripts/testbed';
import { readEnvFile } from '../config/sandbox';
import { testbedLayout } from '../scripts/testbed/layout';
import { isPortOpen, waitUntil } from '../scripts/testbed/processes';
import { repoRoot, startScript } from './helpers/process-output';

/**
 * `npm start` on the embedded defaults, in a sandbox of its own (own state dir and ports, so it
 * starts every server itself): sandbox up, worker polling, preflight passes, the checklists'
 * schedules exist, Ctrl-C stops all of it.
 */
/** Evaluates fn with some environment variables set, restoring them after. */
function withEnv<T>(env: NodeJS.ProcessEnv, fn: () => T): T {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    return fn();
  } finally {
    process.env = saved;
  }
}

describe('npm start with nothing configured', () => {
  test('starts the sandbox loudly, runs the worker, ensures the schedules, and Ctrl-C stops everything it started', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'runbook-npm-start-'));
    const portBase = 17500;
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      TESTBED_STATE_DIR: stateDir,
      TESTBED_PORT_BASE: String(portBase),
      // One real node per machine, and the test bed's own holds it: this second sandbox is kwok-only.
      TESTBED_REAL_NODE: '0',
      WORKER_METRICS_HOST: '127.0.0.1',
      WORKER_METRICS_PORT: String(portBase + 97),
    };
    const sandboxLayout = withEnv(env, () => testbedLayout());
    const start = startScript('scripts/start.ts', env);
    try {
      await start.waitForLine((line) => line.includes('Ctrl-C stops the worker'), 240_000);
      const output = start.lines.join('\n');
      expect(output).toContain('NO TARGETS CONFIGURED: running against the LOCAL SANDBOX');
      expect(output).toContain('Temporal Web UI, runbook runs: http://127.0.0.1:17534/namespaces/default/workflows?query=RunbookName%20IS%20NOT%20NULL');
      expect(output).toMatch(/workflow execute --address 127\.0\.0\.1:17533 .*--type preflight --task-queue runbooks/);

      const sandbox = readEnvFile(join(stateDir, 'testbed.env'));
      const connection = await Connection.connect({ address: sandbox.TEMPORAL_ADDRESS });
      const client = new Client({ connection });
      const result = await client.workflow.execute<typeof preflight>('preflight', { taskQueue: 'runbooks', workflowId: `npm-start-preflight-${Date.now()}`, args: [{}] });

      // The checklists' schedules are ensured once the worker is up, and printed.
      await start.waitForLine((line) => line.includes('runbooks:monthlyReview') || line.startsWith('SCHEDULES NOT ENSURED'));
      expect(start.lines.filter((line) => line.startsWith('SCHEDULES NOT ENSURED'))).toEqual([]);
      for (const type of ['dailyHealthCheck', 'weeklyReview', 'monthlyReview']) {
        expect(start.lines.some((line) => new RegExp(`^  runbooks:${type} +(created|updated|unchanged) .*; next run `).test(line))).toBe(true);
        const schedule = await client.schedule.getHandle(`runbooks:${type}`).describe();
        expect(schedule.action).toMatchObject({ workflowType: type, taskQueue: 'runbooks' });
        expect(schedule.info.nextActionTimes.length).toBeGreaterThan(0);
      }
      expect(result.rows.filter((row) => row.status === 'FAIL')).toEqual([]);
      expect(result.passed).toBeGreaterThan(10);
      expect(result.approvals).toMatchObject({ verified: true });

      // The README walkthrough with signatures on: alice starts, bob approves, each with the sandbox's demo key.
      const cli = (...args: string[]) => execFileSync(process.execPath, [join(repoRoot, 'bin', 'runbook.js'), ...args], { cwd: repoRoot, env, encoding: 'utf8' });
      const started = cli('start', 'trafficControl', '--execute', '--rps', '40', '--as', 'alice');
      expect(started).toMatch(/^started trafficControl\/\S+ \(run \S+\), signed by alice \(.*approver-keys\/alice\)\n$/);
      const workflowId = /^started (\S+)/.exec(started)![1]!;
      let planHash = '';
      await waitUntil('rate-limit waiting for approval', async () => {
        planHash = JSON.parse(cli('status', workflowId, '--json')).pending?.planHash ?? '';
        return planHash !== '';
      });
      const approved = cli('approve', workflowId, '--step', 'rate-limit', '--plan', planHash.slice(0, 12), '--reason', 'walkthrough', '--as', 'bob');
      expect(approved).toMatch(/approved "rate-limit" of \S+ as bob \(l2\), plan [0-9a-f]{12}, signed with SHA256:\S+\n$/);
      const outcome = await client.workflow.getHandle(workflowId).result();
      expect(outcome).toMatchObject({ outcome: 'completed' });
      await connection.close();

      start.child.kill('SIGINT');
      expect(await start.exited).toBe(0);
      const stopping = start.lines.find((line) => line.startsWith('stopping '));
      // A kwok-only sandbox: the real node's app, its users and their discovery are not there.
      expect(stopping?.replace('stopping ', '').split(', ').sort()).toEqual(allServices.filter((name) => !nodeOnlyServices.includes(name)).sort());
      for (const offset of [33, 32, 79, 40, 90, 80, 81, 53, 55, 58]) expect(await isPortOpen(portBase + offset)).toBe(false);
      // Nothing outside its state folder either: PostgreSQL's data folder (in the system temp folder) goes with it.
      expect(existsSync(sandboxLayout.postgresDir)).toBe(false);
    } finally {
      if (start.child.exitCode === null) {
        start.child.kill('SIGKILL');
        // Its servers run detached; stop them through their pid files so no run leaks into the next.
        await down(allServices, sandboxLayout);
      }
      rmSync(stateDir, { recursive: true, force: true });
      rmSync(sandboxLayout.postgresDir, { recursive: true, force: true });
    }
  });
});
