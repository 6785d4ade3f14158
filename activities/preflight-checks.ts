import { errorText } from '../common/failures';
import type { PreflightRow, TargetSystem } from '../common/preflight';

export function notConfigured(target: TargetSystem): PreflightRow[] {
  return [{ target, check: 'configured', status: 'SKIP', detail: 'not configured' }];
}

/** A check's answer; `warn`: it works, but the account may do more than the runbooks need. */
export interface CheckOutcome {
  ok: boolean;
  detail: string;
  warn?: boolean;
}

/** An excess-privileges check: PASS saying what was looked at ("none <lookedAt>"), or WARN listing the excess. */
export function excessOutcome(excess: string[], lookedAt: string): CheckOutcome {
  const unique = [...new Set(excess)];
  if (unique.length === 0) return { ok: true, detail: `none ${lookedAt}` };
  const shown = unique.slice(0, 8).join('; ') + (unique.length > 8 ? `; and ${unique.length - 8} more` : '');
  return { ok: true, warn: true, detail: `the account may do more than the runbooks need: ${shown}` };
}

/**
 * Runs named checks in order; the first check is the connection, and when it fails the rest are
 * not attempted (they would only repeat its error).
 */
export async function runChecks(target: TargetSystem, checks: Array<[check: string, run: () => Promise<CheckOutcome>]>): Promise<PreflightRow[]> {
  const rows: PreflightRow[] = [];
  for (const [index, [check, run]] of checks.entries()) {
    try {
      const { ok, detail, warn } = await run();
      rows.push({ target, check, status: !ok ? 'FAIL' : warn ? 'WARN' : 'PASS', detail });
    } catch (err) {
      rows.push({ target, check, status: 'FAIL', detail: errorText(err) });
      if (index === 0) break;
    }
  }
  return rows;
}
