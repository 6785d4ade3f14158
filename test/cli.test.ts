import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { waitUntil } from '../scripts/testbed/processes';
import { repoRoot } from './helpers/process-output';
import { TestTargets } from './helpers/test-target';
import { testbedConfig, testbedEnv } from './helpers/testbed';
import { withWorker } from './helpers/worker';

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The `runbook` CLI as a person runs it: its own process, identity from --as or RUNBOOK_USER. */
function runbookCli(env: NodeJS.ProcessEnv, ...args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'runbook.js'), ...args], { cwd: repoRoot, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('runbook CLI', () => {
  const targets = new TestTargets();
  const config = testbedConfig({ RUNBOOK_APPROVERS: JSON.stringify([{ id: 'bob', roles: ['l2'] }]) });
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    TEMPORAL_ADDRESS: testbedEnv().TEMPORAL_ADDRESS,
    TEMPORAL_TASK_QUEUE: config.temporal.taskQueue,
    RUNBOOK_EXTRA_CATALOG: join(repoRoot, 'test', 'workflows', 'test-catalog.ts'),
    RUNBOOK_USER: 'erin',
  };

  test('drives a run end to end: start, pending, status, approve, watch to the result', async () => {
    const target = `cli/${randomUUID()}`;
    await withWorker(
      config,
      async () => {
        const started = await runbookCli(env, 'start', 'kernelTestRunbook', '--target', target, '--steps', JSON.stringify([{ id: 'restart', title: 'Restart the app' }]), '--execute', '--severity', 'P1');
        expect(started.stderr).toBe('');
        expect(started.code).toBe(0);
        const workflowId = /^started (\S+) \(run /.exec(started.stdout)?.[1];
        expect(workflowId).toBe(`kernelTestRunbook/${target}`);

        let pending: Array<{ workflowId: string; approvalState: string; severity: string }> = [];
        await waitUntil('the run listed as pending', async () => {
          pending = JSON.parse((await runbookCli(env, 'pending', '--json')).stdout) as typeof pending;
          return pending.some((run) => run.workflowId === workflowId);
        });
        expect(pending.find((run) => run.workflowId === workflowId)).toMatchObject({ approvalState: 'pending', severity: 'P1' });

        const status = await runbookCli(env, 'status', workflowId!);
        expect(status.stdout).toContain(`waiting for approval of "restart" (restart on ${target} at version 1)`);
        expect(status.stdout).toContain('may decide: bob');

        const selfApproval = await runbookCli(env, 'approve', workflowId!, '--step', 'restart', '--reason', 'mine');
        expect(selfApproval).toMatchObject({ code: 1, stdout: '', stderr: 'approve refused: four-eyes rule: erin started this run and cannot approve its steps\n' });

        const approved = await runbookCli(env, 'approve', workflowId!, '--step', 'restart', '--reason', 'app is stuck', '--as', 'bob');
        expect(approved.stdout).toMatch(new RegExp(`^approved "restart" of ${workflowId} as bob \\(l2\\), plan [0-9a-f]{12}\\n$`));

        const watched = await runbookCli(env, 'status', workflowId!, '--watch');
        expect(watched.code).toBe(0);
        expect(watched.stdout.trim().split('\n').pop()).toBe('kernelTestRunbook finished: completed (steps 2/2)');
        expect(targets.applies).toEqual([{ target, stepId: 'restart' }]);
      },
      { workflowsPath: require.resolve('./workflows'), activities: targets.activities() },
    );
  });

  test('errors are one clear line and a non-zero exit', async () => {
    expect(await runbookCli(env, 'start', 'dropEverything')).toMatchObject({ code: 1, stderr: expect.stringMatching(/^unknown runbook "dropEverything"; known: .*preflight.*\n$/) });
    expect(await runbookCli(env, 'approve', 'some-id', '--step', 'x')).toEqual({ code: 2, stdout: '', stderr: 'runbook approve: --reason is required\n' });
    expect(await runbookCli(env, 'frobnicate')).toMatchObject({ code: 2, stderr: expect.stringMatching(/^unknown command "frobnicate"/) });
    expect(await runbookCli({ ...env, TEMPORAL_ADDRESS: 'nonsense' }, 'pending')).toEqual({
      code: 1,
      stdout: '',
      stderr: 'invalid configuration: - temporal.address (env TEMPORAL_ADDRESS): expected host:port, e.g. 127.0.0.1:7233\n',
    });
    const list = await runbookCli(env, 'list', '--json');
    expect(JSON.parse(list.stdout)).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'preflight', kind: 'utility' })]));
  });
});
