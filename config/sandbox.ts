import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadConfig } from './load';
import type { RunbookConfig } from './schema';

/**
 * The local sandbox as programs that only use it see it (the CLI, `npm run schedules`, the alert
 * bridge): where this checkout's sandbox keeps its state and the env file it writes. The sandbox
 * itself (scripts/testbed) writes them; nothing here starts or installs anything.
 */
export function sandboxStateDir(repoRoot = resolve(__dirname, '..')): string {
  return process.env.TESTBED_STATE_DIR ?? join(repoRoot, '.testbed');
}

export function sandboxEnvFile(stateDir = sandboxStateDir()): string {
  return join(stateDir, 'testbed.env');
}

/** The sandbox's demo approvers' private keys, one file per identity. */
export function sandboxApproverKeyDir(stateDir = sandboxStateDir()): string {
  return join(stateDir, 'approver-keys');
}

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

/** The payload key settings a sandbox that encrypts writes to its env file. */
export const sandboxPayloadVariables = ['RUNBOOK_PAYLOAD_KEYS', 'RUNBOOK_PAYLOAD_KEY_ID'];

/**
 * Configuration as usual (process.env); without TEMPORAL_ADDRESS, the Temporal server of this
 * checkout's sandbox (its env file), if it has one: `variables` are taken from that file.
 * `onlyUnset` keeps those the environment already sets; otherwise the file's replace them.
 */
export function loadConfigWithSandbox(variables: readonly string[], options: { onlyUnset?: boolean } = {}): RunbookConfig {
  const env = { ...process.env };
  if (!env.TEMPORAL_ADDRESS) {
    const sandbox = readEnvFile(sandboxEnvFile());
    if (sandbox.TEMPORAL_ADDRESS) {
      for (const name of variables) {
        if (options.onlyUnset) env[name] ??= sandbox[name];
        else env[name] = sandbox[name];
      }
      // Runs of a sandbox that encrypts (TESTBED_PAYLOAD_ENCRYPTION=1) are read with its key.
      for (const name of sandboxPayloadVariables) env[name] ??= sandbox[name];
    }
  }
  return loadConfig({ env });
}
