import { log, patched, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { runbookMode, runbookName } from '../common/search-attributes';
import { type PreflightInput } from '../common/preflight-input';
import { targetSystems, type PreflightResult, type PreflightRow, type TargetSystem } from '../common/preflight';
import { validateInput } from './validate-input';
import { read } from './activity-proxies';
import { catalog } from '../common/catalog';

const checkers: Record<TargetSystem, () => Promise<PreflightRow[]>> = {
  kubernetes: () => read.preflightKubernetes(),
  postgres: () => read.preflightPostgres(),
  redis: () => read.preflightRedis(),
  s3: () => read.preflightS3(workflowInfo().workflowId),
  prometheus: () => read.preflightPrometheus(),
};

/**
 * Preflight (no manual section). What it does: catalog.preflight.
 * A down target is a FAIL row, not a failed run, so one report shows every target.
 */
export async function preflight(rawInput?: PreflightInput): Promise<PreflightResult> {
  const input = validateInput(catalog.preflight, rawInput);
  upsertSearchAttributes([
    { key: runbookName, value: 'preflight' },
    { key: runbookMode, value: 'plan' },
  ]);
  const targets = input.targets ?? [...targetSystems];
  const rows = (await Promise.all(targets.map((target) => checkers[target]()))).flat();
  const count = (status: PreflightRow['status']) => rows.filter((row) => row.status === status).length;
  const result: PreflightResult = { rows, passed: count('PASS'), failed: count('FAIL'), skipped: count('SKIP'), warned: count('WARN'), ok: count('FAIL') === 0 };
  if (patched('preflight-approvals')) result.approvals = await read.approvalVerification();
  log.info('preflight finished', { passed: result.passed, failed: result.failed, skipped: result.skipped, warned: result.warned, approvalsVerified: result.approvals?.verified });
  return result;
}
