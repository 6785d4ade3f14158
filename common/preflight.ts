/** Systems a runbook can touch; preflight checks each one that is configured. */
export const targetSystems = ['kubernetes', 'postgres', 'redis', 's3', 'prometheus'] as const;
export type TargetSystem = (typeof targetSystems)[number];

/** WARN: works, but more is allowed than needed (excess privileges); it does not make `ok` false. */
export type CheckStatus = 'PASS' | 'WARN' | 'FAIL' | 'SKIP';

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
  /** Rows that WARN (absent in runs recorded before preflight warned). */
  warned?: number;
  /** True when nothing failed. */
  ok: boolean;
  /** Whether approvals are proven by signatures (absent in runs recorded before it was reported). */
  approvals?: { verified: boolean; detail: string };
}
