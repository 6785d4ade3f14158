import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../helpers/process-output';

const runtime = join(repoRoot, 'scripts', 'node-runtime.js');
const packageJson = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { engines: { node: string }; scripts: Record<string, string> };

describe('scripts/node-runtime.js', () => {
  test('runs the command with its arguments on Node 24 or newer and returns its exit status', () => {
    const result = spawnSync(process.execPath, [runtime, 'node', '-e', 'console.log(process.versions.node); process.exit(Number(process.argv[1]))', '7'], { encoding: 'utf8' });
    expect(result.status).toBe(7);
    expect(Number(result.stdout.trim().split('.')[0])).toBeGreaterThanOrEqual(24);
  });

  test('a missing command is exit status 127 with its name', () => {
    const result = spawnSync(process.execPath, [runtime, 'no-such-command-here'], { encoding: 'utf8' });
    expect(result.status).toBe(127);
    expect(result.stderr).toContain('no-such-command-here');
  });

  test('every npm script that runs the code goes through it, on the Node that engines and the image name', () => {
    for (const name of ['prestart', 'start', 'pretest', 'test', 'test:unit', 'testbed', 'worker', 'bench', 'runbook', 'schedules', 'alert-bridge']) {
      expect(`${name}: ${packageJson.scripts[name]}`).toMatch(/: (.* && )?node scripts\/node-runtime\.js /);
    }
    expect(packageJson.engines.node).toBe('>=24');
    expect(readFileSync(join(repoRoot, 'Dockerfile'), 'utf8')).toMatch(/^FROM node:24-bookworm-slim$/m);
    expect(readFileSync(runtime, 'utf8')).toMatch(/^const minimumMajor = 24;$/m);
  });
});
