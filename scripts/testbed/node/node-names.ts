import { join } from 'node:path';
import type { TestbedLayout } from '../layout';

/**
 * Every name and address of the real node, derived from the port base so test beds with different
 * bases never share an interface, address range, directory or socket. Addresses come from the
 * benchmarking range 198.18.0.0/15 (RFC 2544): 198.18.<slot>.0/24 for the node, 198.19.<2 slot>.0/24
 * for pods and 198.19.<2 slot + 1>.0/24 for Services, with slot = (base / 100) mod 128.
 */
export interface NodeNames {
  portBase: number;
  slot: number;
  nodeName: string;
  /** Network namespace holding the far end of the veth pair (the node address needs a link that is up). */
  netns: string;
  hostVeth: string;
  peerVeth: string;
  bridge: string;
  nodeIp: string;
  nodeCidr: string;
  peerIp: string;
  podCidr: string;
  podGateway: string;
  serviceCidr: string;
  /** The cgroup parent kubelet creates kubepods under (one per hierarchy). */
  cgroupRoot: string;
  dir: string;
  containerdRoot: string;
  containerdState: string;
  containerdSocket: string;
  kubeletRoot: string;
  cniConfDir: string;
  /** Label and taint of the real node: only pods that ask for it (nodeSelector + toleration) land there. */
  label: { key: string; value: string };
}

export function nodeSlot(portBase: number): number {
  return Math.floor(portBase / 100) % 128;
}

export function nodeNames(layout: TestbedLayout): NodeNames {
  const base = layout.portBase;
  const slot = nodeSlot(base);
  const dir = join(layout.stateDir, 'node');
  return {
    portBase: base,
    slot,
    nodeName: `testbed-node-${base}`,
    netns: `rbn${base}`,
    hostVeth: `rbn${base}h`,
    peerVeth: `rbn${base}n`,
    bridge: `rbn${base}br`,
    nodeIp: `198.18.${slot}.1`,
    nodeCidr: `198.18.${slot}.0/24`,
    peerIp: `198.18.${slot}.2`,
    podCidr: `198.19.${2 * slot}.0/24`,
    podGateway: `198.19.${2 * slot}.1`,
    serviceCidr: `198.19.${2 * slot + 1}.0/24`,
    cgroupRoot: `/rbn${base}`,
    dir,
    containerdRoot: join(dir, 'containerd', 'root'),
    containerdState: join('/run', `rbn${base}-containerd`),
    containerdSocket: join('/run', `rbn${base}-containerd`, 'containerd.sock'),
    kubeletRoot: join(dir, 'kubelet'),
    cniConfDir: join(dir, 'cni'),
    label: { key: 'runbook.testbed/real-node', value: 'true' },
  };
}

/** A real node in the test bed's cluster: always, unless TESTBED_REAL_NODE=0 (kwok pods only, e.g. where there is no root). */
export function realNodeWanted(): boolean {
  return process.env.TESTBED_REAL_NODE !== '0';
}

/**
 * The addresses kwok gives its simulated pods: never on an interface or a route (nothing answers
 * there), so every test bed may share them; outside every slot above (198.18.<0-127> and 198.19.x),
 * and large enough for the 2,000-pod benchmark.
 */
export const kwokPodCidr = '198.18.128.0/17';
