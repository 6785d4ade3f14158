import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { WebClient } from '@slack/web-api';
import { z } from 'zod';
import { slackActionIds } from '../common/slack-actions';
import type { DecisionVerdict, PendingApproval } from '../common/runbook';
import type { Identity, RunbookConfig } from '../config/schema';
import { RunbookClientError, type RunbookClient } from './runbook-client';

/**
 * Approvals from Slack: the Approve / Reject buttons of an approval request (posted by the
 * worker's notify activity) come here as Slack interactivity requests. Each request must carry
 * Slack's `v0` signature; the Slack user must map to a person in `approvers` (slackUserId); a
 * modal asks for the reason; the decision on exactly the plan the message showed is then signed
 * with the channel's own key (an identity of kind channel, which vouches only for its roles).
 */

export interface SlackAnswer {
  status: number;
  body?: unknown;
}

type SlackConfig = NonNullable<RunbookConfig['slack']>;

/** How old a Slack request may be (Slack's own advice: refuse after five minutes, against replays). */
const maxRequestAgeSeconds = 5 * 60;

/** Why a request was not signed by Slack with this signing secret, or undefined when it was. */
export function slackSignatureProblem(headers: IncomingHttpHeaders, rawBody: string, signingSecret: string, nowMs = Date.now()): string | undefined {
  const timestamp = String(headers['x-slack-request-timestamp'] ?? '');
  const signature = String(headers['x-slack-signature'] ?? '');
  if (!timestamp || !signature) return 'missing X-Slack-Signature or X-Slack-Request-Timestamp';
  if (!/^\d+$/.test(timestamp)) return 'X-Slack-Request-Timestamp is not a number';
  if (Math.abs(nowMs / 1000 - Number(timestamp)) > maxRequestAgeSeconds) return 'the Slack request is older than 5 minutes (a replay?)';
  const expected = Buffer.from(`v0=${createHmac('sha256', signingSecret).update(`v0:${timestamp}:${rawBody}`).digest('hex')}`);
  const presented = Buffer.from(signature);
  if (expected.length !== presented.length || !timingSafeEqual(expected, presented)) return 'the Slack signature does not match';
  return undefined;
}

const requestRef = z.object({ workflowId: z.string().min(1), runId: z.string().min(1), stepId: z.string().min(1), planHash: z.string().regex(/^[0-9a-f]{64}$/) });
const modalMetadata = requestRef.extend({ verdict: z.enum(['approve', 'reject']) });
type ModalMetadata = z.infer<typeof modalMetadata>;

const reasonBlock = 'reason';
const modalCallback = 'runbook_decision';

function reasonModal(metadata: ModalMetadata, pending: PendingApproval) {
  const verb = metadata.verdict === 'approve' ? 'Approve' : 'Reject';
  return {
    type: 'modal' as const,
    callback_id: modalCallback,
    private_metadata: JSON.stringify(metadata),
    title: { type: 'plain_text' as const, text: `${verb} step` },
    submit: { type: 'plain_text' as const, text: verb },
    close: { type: 'plain_text' as const, text: 'Cancel' },
    blocks: [
      {
        type: 'section',
        text: { type: 'mrkdwn', text: `*${pending.title}* (\`${pending.stepId}\`) of \`${metadata.workflowId}\`\n${pending.change.summary}\nplan \`${pending.planHash.slice(0, 12)}\`` },
      },
      { type: 'input', block_id: reasonBlock, label: { type: 'plain_text', text: 'Reason' }, element: { type: 'plain_text_input', action_id: reasonBlock, multiline: true } },
    ],
  };
}

export interface SlackInteractivityOptions {
  /** A client whose signer holds the channel identity's key. */
  runbooks: RunbookClient;
  web: WebClient;
  slack: Pick<SlackConfig, 'signingSecret' | 'identity' | 'channel'>;
  approvers: Identity[];
  log: (level: 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
}

export function createSlackInteractivity({ runbooks, web, slack, approvers, log }: SlackInteractivityOptions) {
  const personOf = (userId: unknown) => approvers.find((a) => a.kind === 'person' && a.slackUserId !== undefined && a.slackUserId === userId);
  const tell = (payload: { user?: { id?: string }; channel?: { id?: string } }, text: string) =>
    web.chat
      .postEphemeral({ channel: payload.channel?.id ?? slack.channel, user: String(payload.user?.id), text })
      .catch((err: unknown) => log('warn', 'could not answer in Slack', { error: String(err) }));

  /** A button: check who pressed it and that the plan is still the pending one, then ask for the reason. */
  async function onButton(payload: Record<string, any>): Promise<SlackAnswer> {
    const action = payload.actions?.[0];
    const verdict: DecisionVerdict | undefined = action?.action_id === slackActionIds.approve ? 'approve' : action?.action_id === slackActionIds.reject ? 'reject' : undefined;
    if (!verdict) return { status: 200 };
    let ref: z.infer<typeof requestRef>;
    try {
      ref = requestRef.parse(JSON.parse(String(action.value)));
    } catch {
      return { status: 400, body: { error: 'the button does not name a run, step and plan' } };
    }
    const person = personOf(payload.user?.id);
    if (!person) {
      await tell(payload, `Slack user ${String(payload.user?.id)} is not a configured approver (no approver has this slackUserId): nothing decided.`);
      return { status: 200 };
    }
    const { pending } = await runbooks.getStatus(ref.workflowId);
    if (!pending || pending.stepId !== ref.stepId || pending.planHash !== ref.planHash) {
      await tell(
        payload,
        `Nothing decided: "${ref.stepId}" with plan ${ref.planHash.slice(0, 12)} is no longer waiting${pending ? ` (waiting: "${pending.stepId}", plan ${pending.planHash.slice(0, 12)})` : ''}.`,
      );
      return { status: 200 };
    }
    await web.views.open({ trigger_id: String(payload.trigger_id), view: reasonModal({ ...ref, verdict }, pending) });
    return { status: 200 };
  }

  /** The reason was given: the decision on the plan shown, signed by the channel for the person. */
  async function onReason(payload: Record<string, any>): Promise<SlackAnswer> {
    if (payload.view?.callback_id !== modalCallback) return { status: 200 };
    const errors = (text: string): SlackAnswer => ({ status: 200, body: { response_action: 'errors', errors: { [reasonBlock]: text.slice(0, 300) } } });
    const metadata = modalMetadata.safeParse(
      (() => {
        try {
          return JSON.parse(String(payload.view.private_metadata));
        } catch {
          return undefined;
        }
      })(),
    );
    if (!metadata.success) return errors('this form does not name a run, step and plan');
    const person = personOf(payload.user?.id);
    if (!person) return errors(`Slack user ${String(payload.user?.id)} is not a configured approver`);
    const reason = String(payload.view.state?.values?.[reasonBlock]?.[reasonBlock]?.value ?? '').trim();
    if (!reason) return errors('a reason is required');
    const { workflowId, runId, stepId, planHash, verdict } = metadata.data;
    try {
      const receipt = await runbooks[verdict](workflowId, { stepId, planHash, approver: person.id, reason }, { runId, signedBy: slack.identity });
      const progress = receipt.required && receipt.required > 1 ? ` (${receipt.approvals} of ${receipt.required})` : '';
      log('info', 'decision from Slack', { workflowId, stepId, verdict, approver: person.id });
      await web.chat
        .postMessage({
          channel: slack.channel,
          text: `${person.id} ${verdict === 'approve' ? 'approved' : 'rejected'} "${stepId}" of ${workflowId} (plan ${planHash.slice(0, 12)}) from Slack${progress}: ${reason}`,
        })
        .catch((err: unknown) => log('warn', 'could not post the decision to Slack', { error: String(err) }));
      return { status: 200, body: { response_action: 'clear' } };
    } catch (err) {
      if (err instanceof RunbookClientError) return errors(err.message);
      throw err;
    }
  }

  /** One interactivity request as Slack posts it (form-encoded `payload`), after its signature is checked. */
  return async function handleSlackInteractivity(headers: IncomingHttpHeaders, rawBody: string): Promise<SlackAnswer> {
    const problem = slackSignatureProblem(headers, rawBody, slack.signingSecret);
    if (problem) {
      log('warn', 'Slack request refused', { error: problem });
      return { status: 401, body: { error: problem } };
    }
    let payload: Record<string, any>;
    try {
      payload = JSON.parse(new URLSearchParams(rawBody).get('payload') ?? '') as Record<string, any>;
    } catch {
      return { status: 400, body: { error: 'expected a form field payload with JSON' } };
    }
    if (payload.type === 'block_actions') return onButton(payload);
    if (payload.type === 'view_submission') return onReason(payload);
    return { status: 200 };
  };
}

export type SlackInteractivity = ReturnType<typeof createSlackInteractivity>;
