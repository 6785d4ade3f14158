/** What a Slack button carries back to the interactivity endpoint: the exact run, step and plan shown. */
export interface ApprovalRequestRef {
  workflowId: string;
  runId: string;
  stepId: string;
  planHash: string;
}

/** The action ids of the approval request's buttons, shared by the message and its endpoint. */
export const slackActionIds = { approve: 'runbook_approve', reject: 'runbook_reject' } as const;
