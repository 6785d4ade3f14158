import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { loadConfig } from '../../config/load';
import type { RunbookConfig } from '../../config/schema';
import { testbedLayout } from './layout';

/** Reads KEY=VALUE lines (the format `npm start`, the tests and shells all understand). */
export function readEnvFile(path: string): Record<string, string> {
  if (!existsSync(path)) return {};
  const values: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const match = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (match) values[match[1]!] = match[2]!;
  }
  return values;
}

export function writeEnvFile(path: string, values: Record<string, string>, header: string): void {
  const lines = [`# ${header}`, ...Object.entries(values).map(([key, value]) => `${key}=${value}`), ''];
  writeFileSync(path, lines.join('\n'), { mode: 0o600 });
}

/**
 * Configuration as usual (process.env); without TEMPORAL_ADDRESS, the Temporal server of this
 * checkout's sandbox (its env file), if it has one: `variables` are taken from that file.
 * `onlyUnset` keeps those the environment already sets; otherwise the file's replace them.
 */
export function loadConfigWithSandbox(variables: readonly string[], options: { onlyUnset?: boolean } = {}): RunbookConfig {
  const env = { ...process.env };
  if (!env.TEMPORAL_ADDRESS) {
    const sandbox = readEnvFile(testbedLayout().envFile);
    if (sandbox.TEMPORAL_ADDRESS) {
      for (const name of variables) {
        if (options.onlyUnset) env[name] ??= sandbox[name];
        else env[name] = sandbox[name];
      }
    }
  }
  return loadConfig({ env });
}
