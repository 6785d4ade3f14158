import { readFileSync } from 'node:fs';
import { readmePath, readmeWithTable } from '../../scripts/readme-runbooks';

test("the README's table of workflow types says what the catalog says (npm run readme rewrites it)", () => {
  const readme = readFileSync(readmePath, 'utf8');
  expect(readme).toBe(readmeWithTable(readme));
});
