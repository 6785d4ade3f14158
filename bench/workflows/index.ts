/** Production workflows plus the kernel benchmark runbook. */
export * from '../../workflows';
export { kernelBenchRunbook } from './kernel-bench-runbook';
