import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { compensating, concurrentBuild, destructive, longRunning, quickRead } from './activity-options';

/**
 * The activity proxies every workflow uses, by what a call does: `read` looks (retried quickly),
 * `write` changes a system (few attempts; every write is idempotent and approved), `wait` waits or
 * works in bulk and heartbeats, `indexBuild` builds indexes (heartbeat lost within 10 s), `undo` puts back a change that must not stay half done (retried for minutes).
 */
export const read = proxyActivities<Activities>(quickRead);
export const write = proxyActivities<Activities>(destructive);
export const wait = proxyActivities<Activities>(longRunning);
export const undo = proxyActivities<Activities>(compensating);
export const indexBuild = proxyActivities<Activities>(concurrentBuild);
