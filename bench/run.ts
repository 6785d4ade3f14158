import { readdirSync } from 'node:fs';
import { join } from 'node:path';

/**
 * `npm run bench`: runs every bench/*.bench.ts in turn against the test bed and prints their
 * numbers. Benchmarks measure; they do not pass or fail on speed.
 */
async function main(): Promise<void> {
  const only = process.argv[2];
  const files = readdirSync(__dirname)
    .filter((f) => f.endsWith('.bench.ts') && (!only || f.includes(only)))
    .sort();
  for (const file of files) {
    console.log(`\n=== ${file} ===`);
    const bench = (await import(join(__dirname, file))) as { default: () => Promise<void> };
    await bench.default();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
