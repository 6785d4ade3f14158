import { writeFileSync } from 'node:fs';

/** Writes KEY=VALUE lines (read back by config/sandbox.ts readEnvFile). */
export function writeEnvFile(path: string, values: Record<string, string>, header: string): void {
  const lines = [`# ${header}`, ...Object.entries(values).map(([key, value]) => `${key}=${value}`), ''];
  writeFileSync(path, lines.join('\n'), { mode: 0o600 });
}
