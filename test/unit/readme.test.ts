import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { readmePath, readmeWithTable } from '../../scripts/readme-runbooks';

test("the README's table of workflow types says what the catalog says (npm run readme rewrites it)", () => {
  const readme = readFileSync(readmePath, 'utf8');
  expect(readme).toBe(readmeWithTable(readme));
});

test('every picture the README shows is in the repository', () => {
  const readme = readFileSync(readmePath, 'utf8');
  const pictures = [...readme.matchAll(/!\[[^\]]*\]\(([^)]+)\)/g)].map((m) => m[1]!);
  expect(pictures.length).toBeGreaterThan(0);
  expect(pictures.filter((picture) => !existsSync(join(dirname(readmePath), picture)))).toEqual([]);
});
