import { randomUUID } from 'node:crypto';
import { alertNotification, postToBridge } from '../helpers/alert-notifications';
import { parseJsonLines, startScript } from '../helpers/process-output';
import { testbedEnv } from '../helpers/testbed';

/** `npm run alert-bridge` (scripts/alert-bridge.ts) as its own process, configured from the environment. */
describe('alert bridge process', () => {
  const env = testbedEnv();

  test('listens where configured, answers Alertmanager, logs JSON lines without the token, stops on SIGTERM', async () => {
    const bridge = startScript('scripts/alert-bridge.ts', { ...process.env, ...env, TEMPORAL_TASK_QUEUE: `alert-bridge-${randomUUID()}`, ALERT_BRIDGE_LISTEN: '127.0.0.1:0' });
    try {
      const listening = JSON.parse(await bridge.waitForLine((line) => line.includes('"alert bridge listening"'))) as { url: string; token: string; routes: number };
      expect(listening).toMatchObject({ token: 'required', routes: 7 });
      const url = listening.url.replace(/\/alertmanager$/, '');
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      const answer = await postToBridge(url, alertNotification([{ status: 'firing', labels: { alertname: 'CoffeeMachineEmpty' } }]), env.ALERT_BRIDGE_TOKEN);
      expect(answer.status).toBe(200);
      expect((await postToBridge(url, alertNotification([{ status: 'firing', labels: { alertname: 'CoffeeMachineEmpty' } }]), 'not-the-token-at-all')).status).toBe(401);
      await bridge.waitForLine((line) => line.includes('"notification refused"'));

      bridge.child.kill('SIGTERM');
      expect(await bridge.exited).toBe(0);
      expect(parseJsonLines(bridge.lines).length).toBe(bridge.lines.filter((l) => l.trim()).length);
      expect(bridge.lines.join('\n')).not.toContain(env.ALERT_BRIDGE_TOKEN!);
    } finally {
      if (bridge.child.exitCode === null) bridge.child.kill('SIGKILL');
    }
  });

  test('a bad route stops it at once with the field named, and no value', async () => {
    const bridge = startScript('scripts/alert-bridge.ts', {
      PATH: process.env.PATH,
      TEMPORAL_ADDRESS: '127.0.0.1:7233',
      ALERT_ROUTES: '[{"alertname":"DiskUsageHigh","runbook":"diskPressure","severity":"P2","input":{"logsOlderThanDays":0}}]',
      ALERT_BRIDGE_TOKEN: 'short',
    });
    expect(await bridge.exited).toBe(2);
    expect(bridge.lines).toContain('  - alerting.routes.0.input.logsOlderThanDays (env ALERT_ROUTES): at least 1 day');
    expect(bridge.lines).toContain('  - alerting.token (env ALERT_BRIDGE_TOKEN): expected at least 16 characters');
    expect(bridge.lines.join('\n')).not.toMatch(/short\b/);
  });
});
