/**
 * The README's table of workflow types, written from the catalog (the one place that says what
 * each runbook reads and changes): `npm run readme` rewrites it; test/unit/readme.test.ts checks it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { catalog } from '../common/catalog';

export const readmePath = join(__dirname, '..', 'README.md');
const begin = '<!-- runbooks table: written by `npm run readme` from common/catalog.ts -->';
const end = '<!-- end of runbooks table -->';

export function runbooksTable(): string {
  const rows = Object.values(catalog).map((e) => `| \`${e.name}\` | ${e.kind} | ${e.description.replace(/\|/g, '\\|')} |`);
  return [
    '| workflow type | kind | what it does (⚠: a change, approved) |',
    '|---|---|---|',
    ...rows,
    '| `targetLock` | internal | the lock of one object (`lock/<target>`) runbooks queue on (FIFO) around each re-plan and apply; held while the holding run is open |',
  ].join('\n');
}

/** The README with its table as the catalog says; throws when the markers are missing. */
export function readmeWithTable(readme: string): string {
  const from = readme.indexOf(begin);
  const to = readme.indexOf(end);
  if (from < 0 || to < from) throw new Error(`README.md lacks the markers ${begin} ... ${end}`);
  return `${readme.slice(0, from + begin.length)}\n${runbooksTable()}\n${readme.slice(to)}`;
}

if (require.main === module) {
  writeFileSync(readmePath, readmeWithTable(readFileSync(readmePath, 'utf8')));
  console.log('README.md: runbooks table written from the catalog');
}
