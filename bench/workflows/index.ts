/** Production workflows plus the kernel benchmark runbook. */
export * from '../../workflows';
export { kernelBenchRunbook, plainBenchWorkflow } from './kernel-bench-runbook';
