import type { RunbookResultBase } from '../../../common/runbook';
import { kernelTestRunbook as released } from '../kernel-test-runbook';

/**
 * test/workflows as the next version would ship them: kernelTestRunbook, under the same workflow
 * type, ends its summary with a marker, so a test sees which version's code finished a run
 * (test/worker-versioning.test.ts). Everything else is the released code.
 */
export * from '..';

export const nextVersionMarker = ' [next version]';

export async function kernelTestRunbook(raw: Parameters<typeof released>[0]): Promise<RunbookResultBase> {
  const result = await released(raw);
  return { ...result, summary: `${result.summary}${nextVersionMarker}` };
}
