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

/** An error as one line, with any credentials in URLs removed. */
export function errorText(err: unknown): string {
  const text = err instanceof Error ? `${err.message || err.name}${codeOf(err)}` : String(err);
  return redactUrlCredentials(text.split('\n')[0] ?? '').slice(0, 500);
}

function codeOf(err: Error): string {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && !err.message.includes(code) ? ` (${code})` : '';
}

export function redactUrlCredentials(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/gi, '$1***@');
}
