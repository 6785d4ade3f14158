import { randomUUID } from 'node:crypto';
import { S3Client } from '@aws-sdk/client-s3';
import { loadConfig } from '../../config/load';
import type { RunbookConfig } from '../../config/schema';
import { readTestbedEnv } from '../../scripts/testbed';
import { port, testbedLayout } from '../../scripts/testbed/layout';

/** Ports and credentials of the running test bed (written by global setup). */
export function testbedEnv(): Record<string, string> {
  const env = readTestbedEnv();
  if (!env.TEMPORAL_ADDRESS) throw new Error('test bed env file missing: global setup did not run');
  return env;
}

/**
 * The worker's configuration pointing at the test bed, on a task queue of its own, with overrides.
 * The sandbox's demo approvers (with keys, so signatures required) only where a test asks for them
 * (`RUNBOOK_APPROVERS: testbedEnv().RUNBOOK_APPROVERS`): each test says which approvals it runs with.
 */
export function testbedConfig(overrides: Record<string, string | undefined> = {}): RunbookConfig {
  const env: Record<string, string | undefined> = { ...testbedEnv(), RUNBOOK_APPROVERS: undefined, ALERT_BRIDGE_SIGNING_KEY: undefined, TEMPORAL_TASK_QUEUE: `test-${randomUUID()}`, ...overrides };
  return loadConfig({ env: env as NodeJS.ProcessEnv });
}

/**
 * A client of the test bed's S3 (SeaweedFS) with its credentials, as the tests see it: from the env
 * file (scripts/testbed/s3-server.ts testbedS3Client needs the test bed's context instead, and
 * does not retry). The caller destroys it.
 */
export function testbedS3(): S3Client {
  const env = testbedEnv();
  return new S3Client({
    endpoint: env.S3_ENDPOINT,
    region: env.S3_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: env.TESTBED_S3_ADMIN_ACCESS_KEY_ID!, secretAccessKey: env.TESTBED_S3_ADMIN_SECRET_ACCESS_KEY! },
  });
}

/** A loopback port nothing listens on, for "target down" cases (not 9 or 1: fetch refuses those as "bad ports"). */
export const closedPort = port(testbedLayout(), 'alwaysClosed');

/** Approvers without keys (decisions unverified, as before signed approvals): bob l2, carol manager, dave l1, erin l2. */
export const unsignedTeam = [
  { id: 'bob', roles: ['l2'] },
  { id: 'carol', roles: ['manager'] },
  { id: 'dave', roles: ['l1'] },
  { id: 'erin', roles: ['l2'] },
];
