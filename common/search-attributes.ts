import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** Custom search attributes (all Keyword) that let the Temporal UI and `listRuns` filter runbook runs. */
export const runbookName = defineSearchAttributeKey('RunbookName', SearchAttributeType.KEYWORD);
export const runbookSeverity = defineSearchAttributeKey('RunbookSeverity', SearchAttributeType.KEYWORD);
export const runbookTarget = defineSearchAttributeKey('RunbookTarget', SearchAttributeType.KEYWORD);
export const runbookApprovalState = defineSearchAttributeKey('RunbookApprovalState', SearchAttributeType.KEYWORD);
export const runbookMode = defineSearchAttributeKey('RunbookMode', SearchAttributeType.KEYWORD);

export const runbookSearchAttributeKeys = [runbookName, runbookSeverity, runbookTarget, runbookApprovalState, runbookMode];

/**
 * The Temporal UI's workflow list showing runbook runs only: the target locks and other internal
 * workflows carry no RunbookName, so they stay out of the view an SRE lands on.
 */
export function runbookRunsUrl(uiUrl: string, namespace: string): string {
  return `${uiUrl.replace(/\/$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows?query=${encodeURIComponent(runbookRunsQuery)}`;
}

/** Runbook runs only, in Temporal's list filter syntax (what the UI link and `listRuns` use). */
export const runbookRunsQuery = `${runbookName.name} IS NOT NULL`;
