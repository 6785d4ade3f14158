import { execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keyedApprovers } from './helpers/approver-keys';
import { waitUntil } from '../scripts/testbed/processes';
import { repoRoot } from './helpers/process-output';
import { TestTargets } from './helpers/test-target';
import { testbedConfig, testbedEnv } from './helpers/testbed';
import { withWorker } from './helpers/worker';

/** The SDK's built-in query the UI reads: handler descriptions and Current Details. */
interface WorkflowMetadata {
  definition: Record<'signalDefinitions' | 'updateDefinitions' | 'queryDefinitions', Array<{ name: string; description?: string }>>;
  currentDetails: string;
}

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

/** A real ssh-agent holding `keyFile`, as an SRE's shell has one. */
async function startSshAgent(dir: string, keyFile: string): Promise<{ socket: string; stop: () => void }> {
  const socket = join(dir, 'agent.sock');
  const agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
  await waitUntil('ssh-agent listening', async () => existsSync(socket));
  execFileSync('ssh-add', [keyFile], { env: { ...process.env, SSH_AUTH_SOCK: socket }, stdio: 'pipe' });
  return { socket, stop: () => agent.kill() };
}

describe('runbook CLI', () => {
  const targets = new TestTargets();
  const keys = keyedApprovers({ bob: ['l2'], erin: ['l1'] });
  const keyDir = mkdtempSync(join(tmpdir(), 'runbook-cli-keys-'));
  const keyFile = (id: string) => {
    const path = join(keyDir, id);
    if (!existsSync(path)) writeFileSync(path, keys.keys[id]!.privateKey, { mode: 0o600 });
    return path;
  };
  const config = testbedConfig({ RUNBOOK_APPROVERS: JSON.stringify(keys.approvers), KUBECONFIG: undefined, KUBERNETES_AUDIT_LOG: undefined });
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    TEMPORAL_ADDRESS: testbedEnv().TEMPORAL_ADDRESS,
    TEMPORAL_TASK_QUEUE: config.temporal.taskQueue,
    RUNBOOK_EXTRA_CATALOG: join(repoRoot, 'test', 'workflows', 'test-catalog.ts'),
    RUNBOOK_USER: 'erin',
    RUNBOOK_APPROVERS: JSON.stringify(keys.approvers),
  };
  afterAll(() => rmSync(keyDir, { recursive: true, force: true }));

  /** erin starts (signed) a one-step run on `target`; returns it once "restart" waits, with its plan hash. */
  async function startWaitingRun(target: string): Promise<{ workflowId: string; planHash: string }> {
    const steps = JSON.stringify([{ id: 'restart', title: 'Restart the app' }]);
    const started = await runbookCli(env, 'start', 'kernelTestRunbook', '--target', target, '--steps', steps, '--execute', '--key', keyFile('erin'));
    const workflowId = /^started (\S+) \(run /.exec(started.stdout)![1]!;
    let planHash = '';
    await waitUntil('restart pending', async () => {
      planHash = JSON.parse((await runbookCli(env, 'status', workflowId, '--json')).stdout).pending?.planHash ?? '';
      return planHash !== '';
    });
    return { workflowId, planHash };
  }

  test('drives a run end to end: start, pending, status, approve, watch to the result', async () => {
    const target = `cli/${randomUUID()}`;
    await withWorker(
      config,
      async () => {
        const started = await runbookCli(
          env,
          'start',
          'kernelTestRunbook',
          '--target',
          target,
          '--steps',
          JSON.stringify([{ id: 'restart', title: 'Restart the app' }]),
          '--execute',
          '--severity',
          'P1',
          '--key',
          keyFile('erin'),
        );
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

        // Not on a terminal and no --plan: the plan is shown, nothing is decided.
        const unseen = await runbookCli(env, 'approve', workflowId!, '--step', 'restart', '--reason', 'looks fine', '--as', 'bob', '--key', keyFile('bob'));
        expect(unseen.code).toBe(2);
        const planHash = /plan: +([0-9a-f]{64})/.exec(unseen.stdout)?.[1];
        expect(unseen.stdout).toContain(`change:  restart on ${target} at version 1`);
        expect(unseen.stderr).toBe(
          `runbook approve: refusing to decide a plan you have not confirmed: read the plan above and pass --plan ${planHash!.slice(0, 12)}, or run on a terminal to confirm it\n`,
        );
        const otherPlan = await runbookCli(env, 'approve', workflowId!, '--step', 'restart', '--reason', 'x', '--as', 'bob', '--key', keyFile('bob'), '--plan', 'ffffffffffff');
        expect(otherPlan).toMatchObject({ code: 1, stderr: `the decision names plan ffffffffffff, but the pending plan is ${planHash}: review the current plan and decide again\n` });

        const selfApproval = await runbookCli(env, 'approve', workflowId!, '--step', 'restart', '--reason', 'mine', '--plan', planHash!, '--key', keyFile('erin'));
        expect(selfApproval).toMatchObject({ code: 1, stderr: 'approve refused: four-eyes rule: erin started this run and cannot approve its steps\n' });

        // bob's key in his ssh-agent, as on his laptop.
        const agent = await startSshAgent(keyDir, keyFile('bob'));
        try {
          const approved = await runbookCli(
            { ...env, SSH_AUTH_SOCK: agent.socket },
            'approve',
            workflowId!,
            '--step',
            'restart',
            '--reason',
            'app is stuck',
            '--as',
            'bob',
            '--plan',
            planHash!.slice(0, 12),
          );
          expect(approved.stdout.trim().split('\n').pop()).toBe(`approved "restart" of ${workflowId} as bob (l2), plan ${planHash!.slice(0, 12)}, signed with ${keys.keys.bob!.fingerprint}`);
        } finally {
          agent.stop();
        }

        const watched = await runbookCli(env, 'status', workflowId!, '--watch');
        expect(watched.code).toBe(0);
        expect(watched.stdout.trim().split('\n').pop()).toBe('kernelTestRunbook finished: completed (steps 2/2)');
        expect(targets.applies).toEqual([{ target, stepId: 'restart' }]);
      },
      { workflowsPath: require.resolve('./workflows'), activities: targets.activities() },
    );
  });

  test('runbook sign prints a decision the Temporal UI can send as the approve Update', async () => {
    const target = `cli-ui/${randomUUID()}`;
    await withWorker(
      config,
      async ({ client }) => {
        const { workflowId, planHash } = await startWaitingRun(target);
        const handle = client.workflow.getHandle(workflowId);

        // What the UI shows beside the run: described messages, Current Details with the plan and how to decide it.
        const metadata = await handle.query<WorkflowMetadata>('__temporal_workflow_metadata');
        const described = Object.fromEntries(
          [...metadata.definition.signalDefinitions, ...metadata.definition.updateDefinitions, ...metadata.definition.queryDefinitions].map((d) => [d.name, d.description ?? '']),
        );
        for (const name of ['approve', 'reject', 'approveSignal', 'rejectSignal', 'cancel', 'alertFiring', 'alertResolved', 'status']) expect(described[name]).toMatch(/\. (Input: .*\{|No input)/);
        expect(described.approve).toContain('runbook sign');
        expect(described.lockGranted).toMatch(/^Internal/);
        expect(metadata.currentDetails).toContain(`**waiting for approval** of "restart"`);
        expect(metadata.currentDetails).toContain(`**Plan:** \`${planHash}\``);
        expect(metadata.currentDetails).toContain(`runbook approve ${workflowId} --step restart --plan ${planHash} --reason "<why>" --as <you>`);
        expect(metadata.currentDetails).toContain(`runbook sign ${workflowId} --step restart --plan ${planHash}`);

        // Activities and the approval timer say what they are for; the run's priority comes from its severity (P2).
        const events = (await handle.fetchHistory()).events!;
        const summaries = await Promise.all(
          events.filter((e) => e.userMetadata?.summary).map(async (e) => (await client.options.loadedDataConverter.payloadConverter.fromPayload(e.userMetadata!.summary!)) as string),
        );
        expect(summaries).toEqual(expect.arrayContaining([`readTestTarget ${target}`, expect.stringMatching(/^approval of "restart" by tier l\d, until /)]));
        expect((await handle.describe()).priority).toMatchObject({ priorityKey: 3 }); // unset would be 0

        const signed = await runbookCli(env, 'sign', workflowId, '--step', 'restart', '--reason', 'from the UI', '--plan', planHash, '--as', 'bob', '--key', keyFile('bob'));
        expect(signed.code).toBe(0);
        expect(signed.stderr).toContain('Paste into the Temporal UI');
        const pasted = JSON.parse(signed.stdout) as { statement: string; signature: string };
        expect(Object.keys(pasted)).toEqual(['statement', 'signature']);
        // What the UI's Update dialog sends: the update name and the pasted JSON as its argument.
        const receipt = await handle.executeUpdate<{ approver: string; verified: boolean }, [unknown]>('approve', { args: [pasted] });
        expect(receipt).toMatchObject({ approver: 'bob', verified: true });
        await client.workflow.getHandle(workflowId).result();
        expect(targets.applies.filter((a) => a.target === target)).toEqual([{ target, stepId: 'restart' }]);
      },
      { workflowsPath: require.resolve('./workflows'), activities: targets.activities() },
    );
  });

  test('on a terminal, reject asks to confirm the plan it printed: "no" decides nothing, "yes" decides it', async () => {
    const target = `cli-tty/${randomUUID()}`;
    /** The CLI under a pseudo-terminal (util-linux `script`), with `answer` typed at its prompt. */
    const onTerminal = (answer: string, ...args: string[]) =>
      new Promise<CliResult>((resolve) => {
        const command = [process.execPath, join(repoRoot, 'bin', 'runbook.js'), ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
        const child = spawn('script', ['-qec', command, '/dev/null'], { cwd: repoRoot, env });
        let stdout = '';
        child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
        child.stdin.end(`${answer}\n`);
        child.once('close', (code) => resolve({ code, stdout, stderr: '' }));
      });
    await withWorker(
      config,
      async ({ client }) => {
        const { workflowId } = await startWaitingRun(target);
        const declined = await onTerminal('no', 'reject', workflowId, '--step', 'restart', '--reason', 'not now', '--as', 'bob', '--key', keyFile('bob'));
        expect(declined.code).toBe(2);
        expect(declined.stdout).toMatch(/reject plan [0-9a-f]{12} of "restart"\? type yes: /);
        expect(declined.stdout).toContain('nothing decided');
        const confirmed = await onTerminal('yes', 'reject', workflowId, '--step', 'restart', '--reason', 'not now', '--as', 'bob', '--key', keyFile('bob'));
        expect(confirmed.stdout).toMatch(/rejected "restart" of \S+ as bob \(l2\), plan [0-9a-f]{12}, signed with SHA256:/);
        expect(confirmed.code).toBe(0);
        expect(await client.workflow.getHandle(workflowId).result()).toMatchObject({ outcome: 'rejected' });
      },
      { workflowsPath: require.resolve('./workflows'), activities: targets.activities() },
    );
  });

  test('a run refused at once: start exits 1 with the refusal, and status tells how it ended, with and without a worker', async () => {
    const target = `kube-system/${randomUUID()}`;
    const workflowId = `kernelTestRunbook/${target}`;
    const oneStep = JSON.stringify([{ id: 'restart', title: 'Restart the app' }]);
    const refusal = 'namespace kube-system is never touched by runbooks (activity readTestTarget)';
    await withWorker(
      config,
      async () => {
        const started = await runbookCli(env, 'start', 'kernelTestRunbook', '--target', target, '--steps', oneStep, '--execute', '--key', keyFile('erin'));
        expect(started).toMatchObject({ code: 1, stdout: expect.stringMatching(/^started kernelTestRunbook\/kube-system\//), stderr: `${workflowId} failed: ${refusal}\n` });

        const status = await runbookCli(env, 'status', workflowId);
        expect(status.code).toBe(0);
        expect(status.stdout).toMatch(/ finished: failed: namespace kube-system is never touched by runbooks\n/);

        const again = await runbookCli(env, 'start', 'kernelTestRunbook', '--target', target, '--steps', oneStep, '--wait', '--key', keyFile('erin'));
        expect(again).toMatchObject({ code: 1, stderr: `${workflowId} failed: ${refusal}\n` });
      },
      { workflowsPath: require.resolve('./workflows'), activities: targets.activities() },
    );
    // No worker on the task queue now: the server's record still says what happened.
    const unanswered = await runbookCli(env, 'status', workflowId);
    expect(unanswered.code).toBe(0);
    expect(unanswered.stdout).toContain(`kernelTestRunbook FAILED: ${refusal}`);
    expect(unanswered.stdout).toContain('no worker answered');
    const watched = await runbookCli(env, 'status', workflowId, '--watch');
    expect(watched).toMatchObject({ code: 1, stderr: `${workflowId} failed: ${refusal}\n` });
  });

  test('errors are one clear line and a non-zero exit', async () => {
    expect(await runbookCli(env, 'start', 'dropEverything')).toMatchObject({ code: 1, stderr: expect.stringMatching(/^unknown runbook "dropEverything"; known: .*preflight.*\n$/) });
    expect(await runbookCli(env, 'approve', 'some-id', '--step', 'x')).toEqual({ code: 2, stdout: '', stderr: "error: required option '--reason <text>' not specified\n" });
    expect(await runbookCli(env, 'frobnicate')).toMatchObject({ code: 2, stderr: expect.stringMatching(/^error: unknown command 'frobnicate'/) });
    expect(await runbookCli(env, 'start', 'kernelTestRunbook', '--severity', 'P9')).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/option '--severity <severity>' argument 'P9' is invalid. Allowed choices are P0, P1, P2, P3/),
    });
    const help = await runbookCli(env, 'approve', '--help');
    expect(help).toMatchObject({ code: 0, stdout: expect.stringContaining('--plan <hash>') });
    expect(await runbookCli({ ...env, TEMPORAL_ADDRESS: 'nonsense' }, 'pending')).toEqual({
      code: 1,
      stdout: '',
      stderr: 'invalid configuration: - temporal.address (env TEMPORAL_ADDRESS): expected host:port, e.g. 127.0.0.1:7233\n',
    });
    const list = await runbookCli(env, 'list', '--json');
    expect(JSON.parse(list.stdout)).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'preflight', kind: 'utility' })]));
  });
});
