/** Systems a runbook can touch; preflight checks each one that is configured. */
export const targetSystems = ['kubernetes', 'postgres', 'redis', 's3', 'prometheus'] as const;
export type TargetSystem = (typeof targetSystems)[number];

export type CheckStatus = 'PASS' | 'FAIL' | 'SKIP';

/** One row of the preflight table. */
export interface PreflightRow {
  target: TargetSystem;
  check: string;
  status: CheckStatus;
  detail: string;
}

export interface PreflightResult {
  rows: PreflightRow[];
  passed: number;
  failed: number;
  skipped: number;
  /** True when nothing failed. */
  ok: boolean;
  /** Whether approvals are proven by signatures (absent in runs recorded before it was reported). */
  approvals?: { verified: boolean; detail: string };
}
