import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { checkServiceRange } from '../../scripts/testbed/kubernetes-server';
import { pkiPaths } from '../../scripts/testbed/kubernetes-pki';
import type { TestbedLayout } from '../../scripts/testbed/layout';
import { nodeNames } from '../../scripts/testbed/node/node-names';
import { isRunning, pidFile } from '../../scripts/testbed/processes';

/** What the test bed concludes from a state folder it finds: pid files and the cluster's Service range. */
function layoutIn(stateDir: string, portBase: number): TestbedLayout {
  return { repoRoot: process.cwd(), stateDir, cacheDir: join(stateDir, 'cache'), envFile: join(stateDir, 'testbed.env'), postgresDir: join(stateDir, 'pg'), portBase };
}

function withRealNode<T>(value: string | undefined, body: () => T): T {
  const before = process.env.TESTBED_REAL_NODE;
  if (value === undefined) delete process.env.TESTBED_REAL_NODE;
  else process.env.TESTBED_REAL_NODE = value;
  try {
    return body();
  } finally {
    if (before === undefined) delete process.env.TESTBED_REAL_NODE;
    else process.env.TESTBED_REAL_NODE = before;
  }
}

/** A state folder whose cluster was created with `range` (undefined: before the range was recorded). */
function clusterCreatedWith(range: string | undefined, portBase: number): TestbedLayout {
  const layout = layoutIn(mkdtempSync(join(tmpdir(), 'testbed-state-')), portBase);
  const { dir } = pkiPaths(layout);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, '.complete'), '');
  if (range !== undefined) writeFileSync(join(dir, 'service-range'), `${range}\n`);
  return layout;
}

describe('test bed state folder', () => {
  test('a pid file of a process that exited, or whose pid another program now has, is not running', () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'testbed-pids-'));
    const exited = spawnSync('true');
    writeFileSync(pidFile(stateDir, 'node-kubelet'), String(exited.pid));
    expect(isRunning(stateDir, 'node-kubelet', 'kubelet')).toBe(false);

    // This very process is alive, but it is not a kubelet.
    writeFileSync(pidFile(stateDir, 'node-kubelet'), String(process.pid));
    expect(isRunning(stateDir, 'node-kubelet', 'kubelet')).toBe(false);
    expect(isRunning(stateDir, 'node-kubelet', basename(process.execPath))).toBe(true);
  });

  test('a cluster created with the Service range this run needs is reused', () => {
    const base = 27300;
    const range = nodeNames(layoutIn('/unused', base)).serviceCidr;
    expect(range).toMatch(/^198\.19\./);
    withRealNode(undefined, () => expect(() => checkServiceRange(clusterCreatedWith(range, base))).not.toThrow());
    withRealNode('0', () => expect(() => checkServiceRange(clusterCreatedWith(range, base))).not.toThrow());
  });

  test('a cluster created with another port base (Service range) is refused with a sentence naming both ranges and the way out', () => {
    const other = nodeNames(layoutIn('/unused', 17200)).serviceCidr;
    const wanted = nodeNames(layoutIn('/unused', 27300)).serviceCidr;
    const layout = clusterCreatedWith(other, 27300);
    expect(other).not.toBe(wanted);
    withRealNode('1', () =>
      expect(() => checkServiceRange(layout)).toThrow(
        `the state folder ${layout.stateDir} holds a cluster created with the Service range ${other}, but this run (TESTBED_PORT_BASE=27300) needs ${wanted}; use the settings it was created with, another TESTBED_STATE_DIR, or stop it (npm run testbed -- down kubernetes) and remove ${join(layout.stateDir, 'kubernetes')}`,
      ),
    );
    // A state folder from before the record (10.96.0.0/16, outside 198.18.0.0/15) is refused, node or not.
    for (const node of [undefined, '0']) withRealNode(node, () => expect(() => checkServiceRange(clusterCreatedWith(undefined, 27300))).toThrow(/created with the Service range 10\.96\.0\.0\/16/));
  });
});
