import { Context } from '@temporalio/activity';
import type { WebClient } from '@slack/web-api';
import { slackActionIds, type ApprovalRequestRef } from '../common/slack-actions';
import { classified, failure, invalidInput } from './errors';

export interface NotifyDeps {
  /** Absent when no webhook is configured: notifications are then recorded as not sent. */
  webhookUrl?: string;
  fetchTimeoutMs?: number;
  /** Slack's Web API (bot token): approval requests are posted there with Approve / Reject buttons. */
  slack?: { web: WebClient; channel: string };
}

export interface Notification {
  /** One line people read first. */
  title: string;
  /** Markdown-ish body (Slack mrkdwn). */
  text?: string;
  severity?: 'P0' | 'P1' | 'P2' | 'P3' | 'info';
  /** Label/value pairs shown as fields. */
  fields?: Record<string, string>;
  /** Stable id (e.g. workflow id + step) so a receiver can drop duplicates of a retried post. */
  dedupeKey: string;
  /** An approval request: also posted to Slack (when configured) with Approve / Reject buttons. */
  approval?: ApprovalRequestRef;
}

export interface NotifyResult {
  sent: boolean;
  reason?: string;
  status?: number;
  attempt: number;
}

/** The Slack incoming-webhook shape (text + blocks), which most chat tools accept. */
export function slackPayload(notification: Notification): Record<string, unknown> {
  const severity = notification.severity && notification.severity !== 'info' ? `[${notification.severity}] ` : '';
  const fieldLines = Object.entries(notification.fields ?? {}).map(([label, value]) => `*${label}:* ${value}`);
  const body = [notification.text, ...fieldLines].filter(Boolean).join('\n');
  return {
    text: `${severity}${notification.title}`,
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: `${severity}${notification.title}`.slice(0, 150) } },
      ...(body ? [{ type: 'section', text: { type: 'mrkdwn', text: body.slice(0, 3000) } }] : []),
    ],
    metadata: { event_type: 'runbook_notification', event_payload: { dedupeKey: notification.dedupeKey, severity: notification.severity ?? 'info' } },
  };
}

/** The approval request as a Slack message: the plan, and buttons that carry exactly that plan back. */
export function slackApprovalMessage(notification: Notification & { approval: ApprovalRequestRef }, channel: string) {
  const { blocks, text } = slackPayload(notification) as { blocks: unknown[]; text: string };
  const value = JSON.stringify(notification.approval);
  return {
    channel,
    text,
    blocks: [
      ...blocks,
      {
        type: 'actions',
        block_id: 'runbook_decision',
        elements: [
          { type: 'button', action_id: slackActionIds.approve, style: 'primary', text: { type: 'plain_text', text: 'Approve' }, value },
          { type: 'button', action_id: slackActionIds.reject, style: 'danger', text: { type: 'plain_text', text: 'Reject' }, value },
        ],
      },
    ],
  };
}

export function createNotifyActivities({ webhookUrl, fetchTimeoutMs = 10_000, slack }: NotifyDeps) {
  return {
    /** Posts one notification; a non-2xx answer fails the attempt as Transient so Temporal retries it with backoff. */
    async notify(notification: Notification): Promise<NotifyResult> {
      const attempt = Context.current().info.attempt;
      if (!notification.title?.trim()) throw invalidInput('a notification needs a title');
      if (!notification.dedupeKey?.trim()) throw invalidInput('a notification needs a dedupeKey');
      if (slack && notification.approval) {
        const message = slackApprovalMessage({ ...notification, approval: notification.approval }, slack.channel);
        await classified('post the approval request to Slack', () => slack.web.chat.postMessage(message), 'Slack');
      }
      if (!webhookUrl) return { sent: Boolean(slack && notification.approval), reason: 'no webhook configured (NOTIFY_WEBHOOK_URL)', attempt };
      const response = await classified(
        'post notification',
        () =>
          fetch(webhookUrl, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'idempotency-key': notification.dedupeKey },
            body: JSON.stringify(slackPayload(notification)),
            signal: AbortSignal.timeout(fetchTimeoutMs),
          }),
        'the notification webhook',
      );
      if (response.status >= 500 || response.status === 429) throw failure('Transient', `post notification: webhook answered HTTP ${response.status}`);
      if (!response.ok) throw failure('InvalidInput', `post notification: webhook refused it with HTTP ${response.status}`);
      return { sent: true, status: response.status, attempt };
    },
  };
}
