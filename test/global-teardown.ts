import { existsSync, readdirSync } from 'node:fs';
import { basename } from 'node:path';
import { allServices, down, type ServiceName } from '../scripts/testbed';
import { testbedLayout, type TestbedLayout } from '../scripts/testbed/layout';
import { nodeLeftovers } from '../scripts/testbed/node/node-lifecycle';
import { isAlive, readPid } from '../scripts/testbed/processes';

/** Every process the test bed started, by the pid files in its state folder (all at its top, see processes.ts pidFile). */
function testbedProcesses(stateDir: string): Array<{ name: string; pid: number }> {
  if (!existsSync(stateDir)) return [];
  return readdirSync(stateDir)
    .filter((file) => file.endsWith('.pid'))
    .map((file) => basename(file, '.pid'))
    .flatMap((name) => {
      const pid = readPid(stateDir, name);
      return pid === undefined ? [] : [{ name, pid }];
    });
}

/** What `down` should have removed and did not. */
function leftovers(layout: TestbedLayout, processes: Array<{ name: string; pid: number }>): string[] {
  return [
    ...processes.filter(({ pid }) => isAlive(pid)).map(({ name, pid }) => `process ${name} (pid ${pid})`),
    ...(existsSync(layout.postgresDir) ? [`PostgreSQL's data folder ${layout.postgresDir}`] : []),
    ...nodeLeftovers(layout),
  ];
}

/**
 * Stops only the servers global setup started; servers that were already running stay up. When it
 * started the whole test bed, `down` must leave nothing behind: no process of its pid files, no
 * PostgreSQL data folder, nothing of the real node (interfaces, rules, mounts, cgroups). A leftover
 * fails the run.
 */
export default async function globalTeardown(): Promise<void> {
  const started = (globalThis as { __testbedStarted?: ServiceName[] }).__testbedStarted ?? [];
  if (process.env.TESTBED_KEEP === '1' || started.length === 0) return;
  const layout = testbedLayout();
  const processes = testbedProcesses(layout.stateDir);
  await down(started);
  if (allServices.some((service) => !started.includes(service))) return;
  const left = leftovers(layout, processes);
  if (left.length > 0) throw new Error(`[testbed] down left behind: ${left.join('; ')}`);
  console.log('[testbed] down left nothing behind (processes, PostgreSQL data folder, node)');
}
