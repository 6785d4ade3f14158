import { spawnSync } from 'node:child_process';
import { adminKubeconfigPath } from '../kubernetes-server';
import { kubernetesBinaries } from '../kubernetes-install';
import type { TestbedLayout } from '../layout';

/** kubectl as the test bed's admin; throws with kubectl's message unless `check` is false. */
export function kubectl(layout: TestbedLayout, args: string[], options: { check?: boolean; input?: string } = {}): string {
  const result = spawnSync(kubernetesBinaries(layout).kubectl, ['--kubeconfig', adminKubeconfigPath(layout), '--request-timeout=10s', ...args], { encoding: 'utf8', input: options.input });
  if ((options.check ?? true) && result.status !== 0) throw new Error(`kubectl ${args.join(' ')}: ${result.stderr || result.stdout}`);
  return result.stdout ?? '';
}
