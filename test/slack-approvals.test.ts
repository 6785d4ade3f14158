import { randomUUID } from 'node:crypto';
import { WebClient } from '@slack/web-api';
import { createRunbookClient } from '../client';
import { startAlertBridge, type AlertBridge } from '../client/alert-bridge';
import { createSlackInteractivity } from '../client/slack-approvals';
import type { RunbookResultBase } from '../common/runbook';
import type { ApprovalRequestRef } from '../common/slack-actions';
import { waitUntil } from '../scripts/testbed/processes';
import { keyedApprovers, newKey } from './helpers/approver-keys';
import { slackInteractivityRequest, startFakeSlack, type SlackCall } from './helpers/fake-slack';
import { TestTargets } from './helpers/test-target';
import { testbedConfig } from './helpers/testbed';
import { withWorker } from './helpers/worker';
import { extraCatalog } from './workflows/test-catalog';

/**
 * Approvals from Slack, end to end: the worker posts the request with buttons to Slack's Web API
 * (a local server speaking it), Slack's interactivity requests (signed as Slack signs them) reach
 * the alert bridge's /slack/interactivity, and the decision goes to the run signed by the Slack
 * channel's key on behalf of the mapped person.
 */
describe('Slack approvals', () => {
  const targets = new TestTargets();
  const signingSecret = `slack-secret-${randomUUID()}`;
  const team = keyedApprovers({ bob: ['l2'], carol: ['manager'], erin: ['l1'] });
  const channelKey = newKey('slack');
  const slackUsers: Record<string, string> = { bob: 'U0BOB', carol: 'U0CAROL' };
  let slack: Awaited<ReturnType<typeof startFakeSlack>>;

  beforeAll(async () => {
    slack = await startFakeSlack();
  });
  afterAll(() => slack.close());

  const configFor = () =>
    testbedConfig({
      RUNBOOK_APPROVERS: JSON.stringify([
        ...team.approvers.map((a) => ({ ...a, ...(slackUsers[a.id] ? { slackUserId: slackUsers[a.id] } : {}) })),
        { id: 'slack', kind: 'channel', publicKey: channelKey.publicKey, vouchesFor: ['l1', 'l2'] },
      ]),
      SLACK_API_URL: slack.apiUrl,
      SLACK_BOT_TOKEN: 'xoxb-test-token',
      SLACK_SIGNING_SECRET: signingSecret,
      SLACK_CHANNEL: '#ops-alerts',
      ESCALATION_P2: '1h',
      KUBECONFIG: undefined,
      KUBERNETES_AUDIT_LOG: undefined,
    });

  test('a button and a reason approve exactly the plan shown; forged, stale and unmapped requests decide nothing', async () => {
    const config = configFor();
    const target = `slack/${randomUUID()}`;
    const callsOf = (method: string, after = 0): SlackCall[] => slack.calls.slice(after).filter((c) => c.method === method);
    const result = await withWorker(
      config,
      async ({ client, taskQueue }) => {
        const people = createRunbookClient({ client, taskQueue, catalog: extraCatalog, signer: team.signer });
        const endpointRunbooks = createRunbookClient({ client, taskQueue, catalog: extraCatalog, signer: channelKey.signer });
        const web = new WebClient(config.slack!.botToken, { slackApiUrl: config.slack!.apiUrl });
        const bridge: AlertBridge = await startAlertBridge({
          client,
          taskQueue,
          alerting: config.alerting,
          listen: '127.0.0.1:0',
          log: () => undefined,
          slackInteractivity: createSlackInteractivity({ runbooks: endpointRunbooks, web, slack: config.slack!, approvers: config.approvers, log: () => undefined }),
        });
        const post = async (payload: unknown, options: { secret?: string; timestamp?: number } = {}) => {
          const request = slackInteractivityRequest(payload, options.secret ?? signingSecret, options.timestamp);
          const response = await fetch(`${bridge.url}/slack/interactivity`, { method: 'POST', headers: request.headers, body: request.body });
          const text = await response.text();
          return { status: response.status, body: text ? JSON.parse(text) : undefined };
        };
        try {
          const { workflowId } = await people.startRunbook('kernelTestRunbook', { mode: 'execute', target, steps: [{ id: 'restart', title: 'Restart the app' }] }, { startedBy: 'erin' });
          // The request, in #ops-alerts, with the bot token, and buttons that carry the plan shown.
          let request: SlackCall | undefined;
          await waitUntil('the approval request posted to Slack', async () => (request = callsOf('chat.postMessage').find((c) => JSON.stringify(c.args).includes(workflowId))) !== undefined);
          expect(request).toMatchObject({ authorization: 'Bearer xoxb-test-token', args: { channel: '#ops-alerts' } });
          const actions = (request!.args.blocks as Array<{ type: string; elements?: Array<{ action_id: string; value: string }> }>).find((b) => b.type === 'actions')!;
          expect(actions.elements!.map((e) => e.action_id)).toEqual(['runbook_approve', 'runbook_reject']);
          const shown = JSON.parse(actions.elements![0]!.value) as ApprovalRequestRef;
          const { pending } = await people.getStatus(workflowId);
          expect(shown).toMatchObject({ workflowId, stepId: 'restart', planHash: pending!.planHash });

          const press = (user: string, actionId = 'runbook_approve') => ({
            type: 'block_actions',
            user: { id: user },
            trigger_id: `trigger-${user}`,
            channel: { id: 'C0OPS' },
            actions: [{ action_id: actionId, value: JSON.stringify(shown) }],
          });
          const submit = (user: string, metadata: unknown, reason: string) => ({
            type: 'view_submission',
            user: { id: user },
            view: { callback_id: 'runbook_decision', private_metadata: JSON.stringify(metadata), state: { values: { reason: { reason: { type: 'plain_text_input', value: reason } } } } },
          });

          // Not Slack: a wrong secret, and a genuine request replayed after 6 minutes.
          const opened = callsOf('views.open').length;
          expect(await post(press('U0BOB'), { secret: 'guessed' })).toEqual({ status: 401, body: { error: 'the Slack signature does not match' } });
          expect(await post(press('U0BOB'), { timestamp: Math.floor(Date.now() / 1000) - 6 * 60 })).toEqual({ status: 401, body: { error: 'the Slack request is older than 5 minutes (a replay?)' } });
          // A Slack user no approver maps to: told so, nothing opened.
          const before = slack.calls.length;
          expect((await post(press('U0NOBODY'))).status).toBe(200);
          expect(callsOf('chat.postEphemeral', before)).toEqual([
            expect.objectContaining({ args: expect.objectContaining({ user: 'U0NOBODY', text: expect.stringMatching(/^Slack user U0NOBODY is not a configured approver/) }) }),
          ]);
          expect(callsOf('views.open').length).toBe(opened);

          // bob presses Approve: a modal asks for the reason and remembers exactly the plan shown.
          expect((await post(press('U0BOB'))).status).toBe(200);
          const modal = callsOf('views.open').pop()!;
          expect(modal.args.trigger_id).toBe('trigger-U0BOB');
          const metadata = JSON.parse((modal.args.view as { private_metadata: string }).private_metadata);
          expect(metadata).toEqual({ ...shown, verdict: 'approve' });

          // carol is a manager, but the Slack channel vouches only for l1 and l2.
          const carol = await post(submit('U0CAROL', metadata, 'ok'));
          expect(carol.body.errors.reason).toMatch(/^approve refused: carol \(manager\) through slack \(vouches for l1, l2\) may not decide "restart"/);
          // A form naming a plan other than the pending one (the target changed since it was shown).
          const stale = await post(submit('U0BOB', { ...metadata, planHash: 'f'.repeat(64) }, 'ok'));
          expect(stale.body.errors.reason).toMatch(/^approve refused: the decision names plan f{64}, but the pending plan is [0-9a-f]{64}/);
          expect(targets.applies.filter((a) => a.target === target)).toEqual([]);

          expect(await post(submit('U0BOB', metadata, 'users cannot log in'))).toEqual({ status: 200, body: { response_action: 'clear' } });
          return await people.waitForResult<RunbookResultBase>(workflowId);
        } finally {
          await bridge.close();
        }
      },
      { workflowsPath: require.resolve('./workflows'), activities: targets.activities() },
    );
    expect(result.outcome).toBe('completed');
    expect(targets.applies.filter((a) => a.target === target)).toEqual([{ target, stepId: 'restart' }]);
    expect(result.timeline.find((e) => e.event === 'decided')).toMatchObject({
      by: 'bob',
      role: 'l2',
      reason: 'users cannot log in',
      verified: true,
      keyFingerprint: channelKey.fingerprint,
      detail: 'approved, vouched for by slack',
    });
    expect(slack.calls.some((c) => c.method === 'chat.postMessage' && String(c.args.text).startsWith('bob approved "restart"'))).toBe(true);
  });
});
