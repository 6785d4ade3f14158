import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** Custom search attributes (all Keyword) that let the Temporal UI and `listRuns` filter runbook runs. */
export const runbookName = defineSearchAttributeKey('RunbookName', SearchAttributeType.KEYWORD);
export const runbookSeverity = defineSearchAttributeKey('RunbookSeverity', SearchAttributeType.KEYWORD);
export const runbookTarget = defineSearchAttributeKey('RunbookTarget', SearchAttributeType.KEYWORD);
export const runbookApprovalState = defineSearchAttributeKey('RunbookApprovalState', SearchAttributeType.KEYWORD);
export const runbookMode = defineSearchAttributeKey('RunbookMode', SearchAttributeType.KEYWORD);

export const runbookSearchAttributeKeys = [runbookName, runbookSeverity, runbookTarget, runbookApprovalState, runbookMode];
