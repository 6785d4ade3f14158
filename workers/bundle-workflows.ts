import { writeFileSync } from 'node:fs';
import { bundleWorkflowCode } from '@temporalio/worker';
import { workflowBundle } from './run-worker';

/**
 * Bundles the workflows once, ahead of time (the image does it while it is built), for
 * WORKFLOW_BUNDLE: a worker then starts without webpack and its compiler, which need a writable
 * home and take most of a start on a small CPU.
 *   node --import tsx workers/bundle-workflows.ts <output file>
 */
async function main(output: string | undefined): Promise<void> {
  if (!output) throw new Error('usage: node --import tsx workers/bundle-workflows.ts <output file>');
  const { code } = await bundleWorkflowCode({ workflowsPath: workflowBundle.workflowsPath, workflowInterceptorModules: workflowBundle.interceptors.workflowModules });
  writeFileSync(output, code);
  console.log(`workflow bundle written to ${output} (${(code.length / 1024).toFixed(0)} KiB)`);
}

main(process.argv[2]).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
