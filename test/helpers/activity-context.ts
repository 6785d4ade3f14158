import type { Info } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { createActivities, type Activities } from '../../activities';
import type { RunbookConfig } from '../../config/schema';
import { buildDependencies } from '../../workers/dependencies';
import { testbedConfig } from './testbed';

export interface ActivityHarness {
  activities: Activities;
  /** Runs one activity inside an activity context (heartbeats recorded, cancellation possible). */
  run<K extends keyof Activities>(name: K, ...args: Parameters<Activities[K]>): Promise<Awaited<ReturnType<Activities[K]>>>;
  /** Heartbeat details of every run so far, in order. */
  heartbeats: unknown[];
  environment: MockActivityEnvironment;
  config: RunbookConfig;
  close(): Promise<void>;
}

/**
 * The real activities on real clients of the test bed. MockActivityEnvironment supplies only the
 * activity context (heartbeat, cancellation); every call goes to the real server.
 */
/** `info` stands for a retry: e.g. `{ attempt: 2 }` with the heartbeat details the server kept. */
export function activityHarness(overrides: Record<string, string | undefined> = {}, heartbeatDetails?: unknown, info: Partial<Info> = {}): ActivityHarness {
  const config = testbedConfig(overrides);
  const built = buildDependencies(config, Runtime.instance().logger);
  const activities = createActivities(built.deps);
  const heartbeats: unknown[] = [];
  // A quiet logger: expected refusals would otherwise print a stack trace each.
  const logger = new DefaultLogger('ERROR');
  const environment = new MockActivityEnvironment({ ...info, ...(heartbeatDetails === undefined ? {} : { heartbeatDetails }) }, { logger });
  environment.on('heartbeat', (details: unknown) => heartbeats.push(details));
  return {
    activities,
    heartbeats,
    environment,
    config,
    run: (name, ...args) => environment.run(activities[name] as (...a: unknown[]) => Promise<never>, ...args),
    close: () => built.close(),
  };
}
