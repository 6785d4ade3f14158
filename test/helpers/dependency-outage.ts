import type { SystemName } from '../../activities/errors';
import { serverAnswers } from '../../scripts/testbed';
import { stopApiserver } from './kube-outage';
import { stopServer, type ServerOutage } from './server-outage';

/** The systems a runbook changes, whose outage the crash matrix plays (activities/errors.ts names them so). */
export type DependencyName = Extract<SystemName, 'the Kubernetes API' | 'PostgreSQL' | 'Redis' | 'S3'>;

/**
 * One of the test bed's systems made unreachable for real: its server stopped (connections refused)
 * until `restore`, which waits on the test bed's own health check. PostgreSQL gets a fast shutdown
 * (SIGINT): a smart one would wait for the worker's pooled sessions to leave.
 */
export function stopDependency(system: DependencyName): Promise<ServerOutage> {
  switch (system) {
    case 'the Kubernetes API':
      return stopApiserver();
    case 'PostgreSQL':
      return stopServer('postgres', () => serverAnswers('postgres'), 120_000, 'SIGINT');
    case 'Redis':
      return stopServer('redis', () => serverAnswers('redis'));
    case 'S3':
      return stopServer('s3', () => serverAnswers('s3'));
  }
}
