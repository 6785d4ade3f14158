import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { destructive, longRunning, quickRead } from './activity-options';

/**
 * The activity proxies every workflow uses, by what a call does: `read` looks (retried quickly),
 * `write` changes a system (few attempts; every write is idempotent and approved), `wait` waits or
 * works in bulk and heartbeats.
 */
export const read = proxyActivities<Activities>(quickRead);
export const write = proxyActivities<Activities>(destructive);
export const wait = proxyActivities<Activities>(longRunning);
