import { existsSync, readFileSync, writeFileSync } from 'node:fs';

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
