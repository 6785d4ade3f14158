import { up } from '../scripts/testbed';

/** Brings up every server of the test bed (installing what is missing) before any test file runs. */
export default async function globalSetup(): Promise<void> {
  const t0 = Date.now();
  const handle = await up({ log: (line) => console.log(`[testbed] ${line}`) });
  (globalThis as { __testbedStarted?: string[] }).__testbedStarted = handle.started;
  console.log(`[testbed] ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (env file ${handle.envFile})`);
}
