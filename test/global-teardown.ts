import { down, type ServiceName } from '../scripts/testbed';

/** Stops only the servers global setup started; servers that were already running stay up. */
export default async function globalTeardown(): Promise<void> {
  const started = (globalThis as { __testbedStarted?: ServiceName[] }).__testbedStarted ?? [];
  if (process.env.TESTBED_KEEP === '1' || started.length === 0) return;
  await down(started);
}
