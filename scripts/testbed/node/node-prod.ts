import type { TestbedLayout } from '../layout';
import { nodeNames, realNodeWanted } from './node-names';

/**
 * With TESTBED_REAL_NODE=1 short-drama-prod's servers run on the real node, and the worker reaches
 * them as a user outside the cluster would: through their Services' NodePorts on the node address
 * (kube-proxy). NodePorts rather than ClusterIPs: fixed numbers, so the env file is written before
 * the cluster exists and stays right when a Service is recreated. One real node per machine (its
 * claim), and each cluster has its own NodePort space, so fixed numbers never collide.
 */
export const prodNodePorts = { postgres: 30432, redis: 30379, 'short-drama-app': 30800 } as const;
export type ProdService = keyof typeof prodNodePorts;

/** host:port of a short-drama-prod server: the node's NodePort when the real node is on, else the host process's. */
export function prodAddress(layout: TestbedLayout, service: ProdService, hostAddress: string): string {
  return realNodeWanted() ? `${nodeNames(layout).nodeIp}:${prodNodePorts[service]}` : hostAddress;
}

/** PostgreSQL refuses to run as root: its user in our image, as Debian's package would create it (extract runs no maintainer scripts). */
export const postgresUid = 999;
