import { join } from 'node:path';
import { port, type TestbedLayout } from '../layout';
import { startDetached } from '../processes';
import type { NodeNames } from './node-names';
import { kubectl } from './node-kubectl';

/**
 * Pods on the real node reach the apiserver as in any cluster: through the `kubernetes` Service
 * (default namespace). The apiserver listens on 127.0.0.1 only and runs with
 * `--endpoint-reconciler-type=none` (kwok-only clusters have no address pods could use), so the
 * node brings the Service's endpoint: a relay on the node address (apiserver-relay.js) and an
 * EndpointSlice naming it, which kube-proxy programs like any other.
 */
export const relayProcess = 'node-apiserver-relay';
const sliceName = 'kubernetes-testbed-node';

export function startApiserverRelay(layout: TestbedLayout, names: NodeNames): void {
  const apiserverPort = String(port(layout, 'kubeApiserver'));
  startDetached(layout.stateDir, relayProcess, process.execPath, [join(__dirname, 'apiserver-relay.js'), names.nodeIp, apiserverPort, apiserverPort]);
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
