import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { allServices, down, up } from './testbed';
import { testbedLayout, type TestbedLayout } from './testbed/layout';
import { nodeLeftovers } from './testbed/node/node-lifecycle';
import { isAlive, readPid } from './testbed/processes';

/**
 * `npm test`'s last part (`npm run test:real-node`): short-drama-prod on real containers. A test
 * bed of its own with the real node (TESTBED_REAL_NODE=1), because a cluster's Service range is
 * fixed when it is created: its own state folder (`.testbed-real-node`) and port base (the main
 * one + 500), so it never touches the main test bed or a sandbox a developer has up. It runs
 * test/node (jest.node.config.js), whose last test takes the node down and checks that nothing of
 * it is left on the host; then the rest of this test bed stops, and that leaves nothing behind
 * either: no process of its pid files, no PostgreSQL data folder, nothing of the node.
 */
const repoRoot = resolve(__dirname, '..');

function skipReason(): string | undefined {
  if (process.env.TESTBED_REAL_NODE === '0') return 'TESTBED_REAL_NODE=0';
  if (process.getuid?.() !== 0) return 'a real node (containerd, kubelet, iptables, cgroups) needs root';
  return undefined;
}

/** Every process this test bed started, by the pid files in its state folder (all at its top, see processes.ts pidFile). */
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

async function main(): Promise<number> {
  const skip = skipReason();
  if (skip) {
    console.log(`[real-node] skipped: ${skip}. short-drama-prod on real containers is not proven by this run.`);
    return 0;
  }
  process.env.TESTBED_REAL_NODE = '1';
  process.env.TESTBED_PORT_BASE = String(testbedLayout().portBase + 500); // the main test bed's base (its default included) + 500
  process.env.TESTBED_STATE_DIR = process.env.TESTBED_REAL_NODE_STATE_DIR ?? join(repoRoot, '.testbed-real-node');
  const t0 = Date.now();
  const log = (line: string) => console.log(`[real-node] ${line}`);
  let status = 1;
  try {
    await up({ log });
    log(`test bed with the real node ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (TESTBED_PORT_BASE=${process.env.TESTBED_PORT_BASE}, state ${process.env.TESTBED_STATE_DIR})`);
    const jest = spawnSync(process.execPath, [require.resolve('jest/bin/jest'), '--config', join(repoRoot, 'jest.node.config.js'), '--runInBand'], { stdio: 'inherit', env: process.env });
    status = jest.status ?? 1;
  } finally {
    // The whole test bed is this run's own (its state folder), also when `up` failed half-way.
    if (process.env.TESTBED_KEEP !== '1') {
      const layout = testbedLayout();
      const processes = testbedProcesses(layout.stateDir);
      await down(allServices);
      const left = leftovers(layout, processes);
      if (left.length > 0) {
        log(`down left behind: ${left.join('; ')}`);
        status = 1;
      } else log('down left nothing behind (processes, PostgreSQL data folder, node)');
    }
    log(`done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  return status;
}

main().then(
  (status) => process.exit(status),
  (err: unknown) => {
    console.error(`[real-node] ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
