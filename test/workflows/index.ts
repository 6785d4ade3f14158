/** The production workflows plus test-only runbooks, bundled for kernel tests. */
export * from '../../workflows';
export { kernelTestRunbook } from './kernel-test-runbook';
