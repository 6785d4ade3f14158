import { errorText } from '../common/failures';
import type { PreflightRow, TargetSystem } from '../common/preflight';

export function notConfigured(target: TargetSystem): PreflightRow[] {
  return [{ target, check: 'configured', status: 'SKIP', detail: 'not configured' }];
}

/**
 * Runs named checks in order; the first check is the connection, and when it fails the rest are
 * not attempted (they would only repeat its error).
 */
export async function runChecks(target: TargetSystem, checks: Array<[check: string, run: () => Promise<{ ok: boolean; detail: string }>]>): Promise<PreflightRow[]> {
  const rows: PreflightRow[] = [];
  for (const [index, [check, run]] of checks.entries()) {
    try {
      const { ok, detail } = await run();
      rows.push({ target, check, status: ok ? 'PASS' : 'FAIL', detail });
    } catch (err) {
      rows.push({ target, check, status: 'FAIL', detail: errorText(err) });
      if (index === 0) break;
    }
  }
  return rows;
}
