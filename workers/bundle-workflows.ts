import { writeFileSync } from 'node:fs';
import { bundleWorkflowCode } from '@temporalio/worker';
import { workflowBundle } from './run-worker';
import { bundleTracing, tracedBundlePath } from './tracing';

/**
 * Bundles the workflows once, ahead of time (the image does it while it is built), for
 * WORKFLOW_BUNDLE: a worker then starts without webpack and its compiler, which need a writable
 * home and take most of a start on a small CPU.
 *   node --import tsx workers/bundle-workflows.ts <output file>
 */
async function main(output: string | undefined): Promise<void> {
  if (!output) throw new Error('usage: node --import tsx workers/bundle-workflows.ts <output file>');
  const options = { workflowsPath: workflowBundle.workflowsPath, workflowInterceptorModules: workflowBundle.interceptors.workflowModules };
  // Two bundles: tracing is chosen where the worker runs, and only the traced one makes spans (and puts them in history's headers).
  for (const [file, bundleOptions] of [
    [output, options],
    [tracedBundlePath(output), { ...options, ...bundleTracing() }],
  ] as const) {
    const { code } = await bundleWorkflowCode(bundleOptions);
    writeFileSync(file, code);
    console.log(`workflow bundle written to ${file} (${(code.length / 1024).toFixed(0)} KiB)`);
  }
}

main(process.argv[2]).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
