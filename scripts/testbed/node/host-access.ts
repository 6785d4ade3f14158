import { join } from 'node:path';
import { port, type PortName, type TestbedLayout } from '../layout';
import { startDetached } from '../processes';
import type { NodeNames } from './node-names';
import { kubectl } from './node-kubectl';

/**
 * The test bed's servers listen on 127.0.0.1 only; pods on the real node reach them through one
 * relay on the node address (host-relay.js), port for port:
 * - the apiserver as in any cluster, through the `kubernetes` Service (default namespace). It runs
 *   with `--endpoint-reconciler-type=none` (kwok-only clusters have no address pods could use), so
 *   the node brings the Service's endpoint: an EndpointSlice naming the relay, which kube-proxy
 *   programs like any other;
 * - the servers a worker pod talks to (Temporal, S3, Prometheus, the webhook receiver) at
 *   <node address>:<their port> (hostAddressForPods).
 */
export const relayProcess = 'node-host-relay';
const sliceName = 'kubernetes-testbed-node';
const relayedPorts: PortName[] = ['kubeApiserver', 'temporalGrpc', 's3', 'prometheus', 'webhook'];

export function startHostRelay(layout: TestbedLayout, names: NodeNames): void {
  startDetached(layout.stateDir, relayProcess, process.execPath, [join(__dirname, 'host-relay.js'), names.nodeIp, ...relayedPorts.map((name) => String(port(layout, name)))]);
}

/** A loopback URL or host:port of the test bed, as a pod on the real node reaches it (only relayed ports). */
export function hostAddressForPods(layout: TestbedLayout, names: NodeNames, address: string): string {
  const relayed = new Set(relayedPorts.map((name) => port(layout, name)));
  return address.replace(/\b127\.0\.0\.1:(\d+)/g, (whole, p: string) => {
    if (!relayed.has(Number(p))) throw new Error(`${whole} is not relayed to the real node's pods (host-access.ts relayedPorts)`);
    return `${names.nodeIp}:${p}`;
  });
}

export function publishApiserverEndpoint(layout: TestbedLayout, names: NodeNames): void {
  const slice = {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: sliceName,
      namespace: 'default',
      labels: { 'kubernetes.io/service-name': 'kubernetes', 'endpointslice.kubernetes.io/managed-by': 'runbook-testbed' },
    },
    addressType: 'IPv4',
    endpoints: [{ addresses: [names.nodeIp], conditions: { ready: true } }],
    ports: [{ name: 'https', port: port(layout, 'kubeApiserver'), protocol: 'TCP' }],
  };
  kubectl(layout, ['apply', '-f', '-'], { input: JSON.stringify(slice) });
}

/** Takes the endpoint back (the relay it names goes with the node). */
export function withdrawApiserverEndpoint(layout: TestbedLayout): void {
  kubectl(layout, ['-n', 'default', 'delete', 'endpointslice', sliceName, '--ignore-not-found'], { check: false });
}
