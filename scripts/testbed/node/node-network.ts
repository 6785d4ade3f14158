import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { runChecked } from '../processes';
import type { NodeNames } from './node-names';

/**
 * The node's network: a veth pair whose host end carries the node address (the dummy module is not
 * available here, and kubelet refuses a loopback node IP), the far end in a network namespace of
 * ours so the link is up; and a bridge carrying the pods' gateway. The bridge is ours, not the CNI
 * plugin's: with `isGateway` the plugin would turn on net.ipv4.ip_forward, which is left as found
 * (host -> pod and host -> Service -> pod traffic stays on-link and needs no forwarding).
 */

/** kube-proxy's and kubelet's iptables chains are machine-wide: one real node per machine. */
const claimFile = '/run/runbook-testbed-node.claim';

function ip(args: string[]): void {
  runChecked('ip', args);
}

function quiet(command: string, args: string[]): boolean {
  return spawnSync(command, args, { stdio: 'ignore' }).status === 0;
}

export function linkExists(name: string): boolean {
  return quiet('ip', ['link', 'show', 'dev', name]);
}

export function netnsExists(name: string): boolean {
  return existsSync(`/run/netns/${name}`);
}

/** Takes the machine's real-node claim, or refuses naming the test bed that holds it. */
export function claimNode(names: NodeNames, stateDir: string): void {
  if (existsSync(claimFile)) {
    const [base, holder] = readFileSync(claimFile, 'utf8').trim().split('\n');
    if (Number(base) !== names.portBase && holder && existsSync(holder)) {
      throw new Error(
        `a real node already runs on this machine for the test bed at ${holder} (TESTBED_PORT_BASE=${base}); kubelet's and kube-proxy's iptables chains are machine-wide, so stop it first (TESTBED_PORT_BASE=${base} npm run testbed:node -- down)`,
      );
    }
  }
  writeFileSync(claimFile, `${names.portBase}\n${stateDir}\n`);
}

export function releaseClaim(names: NodeNames): void {
  if (!existsSync(claimFile)) return;
  const [base] = readFileSync(claimFile, 'utf8').trim().split('\n');
  if (Number(base) === names.portBase) rmSync(claimFile, { force: true });
}

export function claimPath(): string {
  return claimFile;
}

export function networkUp(names: NodeNames): void {
  if (!netnsExists(names.netns)) ip(['netns', 'add', names.netns]);
  if (!linkExists(names.hostVeth)) {
    ip(['link', 'add', names.hostVeth, 'type', 'veth', 'peer', 'name', names.peerVeth, 'netns', names.netns]);
    ip(['addr', 'add', `${names.nodeIp}/24`, 'dev', names.hostVeth]);
    ip(['-n', names.netns, 'addr', 'add', `${names.peerIp}/24`, 'dev', names.peerVeth]);
    ip(['-n', names.netns, 'link', 'set', names.peerVeth, 'up']);
    ip(['link', 'set', names.hostVeth, 'up']);
  }
  if (!linkExists(names.bridge)) {
    ip(['link', 'add', names.bridge, 'type', 'bridge']);
    ip(['addr', 'add', `${names.podGateway}/24`, 'dev', names.bridge]);
    ip(['link', 'set', names.bridge, 'up']);
  }
  // A pod reaching a Service (another pod behind a ClusterIP) is routed through the host: forwarding
  // on for packets that arrive from the pods' bridge only, the machine's net.ipv4.ip_forward untouched.
  // It goes with the bridge on teardown.
  writeFileSync(`/proc/sys/net/ipv4/conf/${names.bridge}/forwarding`, '1');
  mkdirSync(names.cniConfDir, { recursive: true });
  writeFileSync(
    `${names.cniConfDir}/10-testbed.conflist`,
    JSON.stringify(
      {
        cniVersion: '1.0.0',
        name: `testbed-${names.portBase}`,
        plugins: [
          {
            type: 'bridge',
            bridge: names.bridge,
            isGateway: false,
            ipMasq: false,
            hairpinMode: true,
            ipam: { type: 'host-local', ranges: [[{ subnet: names.podCidr, gateway: names.podGateway }]], routes: [{ dst: '0.0.0.0/0', gw: names.podGateway }], dataDir: `${names.dir}/cni-ipam` },
          },
        ],
      },
      null,
      2,
    ),
  );
}

export function networkDown(names: NodeNames): void {
  if (linkExists(names.bridge)) ip(['link', 'del', names.bridge]);
  if (linkExists(names.hostVeth)) ip(['link', 'del', names.hostVeth]);
  if (netnsExists(names.netns)) ip(['netns', 'del', names.netns]);
}
