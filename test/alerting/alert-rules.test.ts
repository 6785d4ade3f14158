import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { defaultAlertRoutes } from '../../config/alerting';
import { shippedAlertRulesFile, testbedAlertRules, testbedRateWindow } from '../../scripts/testbed/alert-rules';
import { testbedLayout } from '../../scripts/testbed/layout';
import { waitUntil } from '../../scripts/testbed/processes';
import { testbedEnv } from '../helpers/testbed';

const layout = testbedLayout();
const shipped = shippedAlertRulesFile(layout);

function promtool(args: string[]): { status: number | null; output: string } {
  const result = spawnSync('promtool', args, { encoding: 'utf8' });
  if (result.error) throw new Error(`promtool (Debian package prometheus, installed by the test bed) could not run: ${result.error.message}`);
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

interface Rule {
  alert: string;
  expr: string;
  for: string;
  labels: Record<string, string>;
}
const shippedRules = (parse(readFileSync(shipped, 'utf8')) as { groups: Array<{ name: string; rules: Rule[] }> }).groups.flatMap((g) => g.rules);

/** The rules file shipped for real deployments (deploy/prometheus/runbook-alerts.yml). */
describe('alert rules', () => {
  test('promtool check rules accepts the shipped file', () => {
    const { status, output } = promtool(['check', 'rules', shipped]);
    expect(output).toContain('SUCCESS: 6 rules found');
    expect(status).toBe(0);
  });

  test("promtool's unit tests (runbook-alerts.test.yml): each alert fires just over the manual's threshold, after its for:, and not under it", () => {
    const { status, output } = promtool(['test', 'rules', join(layout.repoRoot, 'deploy', 'prometheus', 'runbook-alerts.test.yml')]);
    expect(output).toContain('SUCCESS');
    expect(status).toBe(0);
  });

  test("the manual's six alerts, each with a for: and a severity, each with a bridge route by default", () => {
    expect(shippedRules.map((r) => [r.alert, r.labels.severity, r.for])).toEqual([
      ['ServiceUnavailable', 'critical', '1m'],
      ['ApiErrorRateHigh', 'critical', '2m'],
      ['DatabaseConnectionsZero', 'critical', '1m'],
      ['ApiLatencyHigh', 'warning', '5m'],
      ['DiskUsageHigh', 'warning', '10m'],
      ['MemoryUsageHigh', 'warning', '5m'],
    ]);
    expect([...new Set(defaultAlertRoutes.map((r) => r.alertname))]).toEqual(shippedRules.map((r) => r.alert));
  });

  test('the test bed copy: for 0s and short rate windows, the same alerts, labels and thresholds; promtool accepts it', () => {
    const copy = testbedAlertRules(readFileSync(shipped, 'utf8'));
    const rules = (parse(copy) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap((g) => g.rules);
    expect(rules.map((r) => r.for)).toEqual(shippedRules.map(() => '0s'));
    expect(rules.map((r) => [r.alert, r.labels])).toEqual(shippedRules.map((r) => [r.alert, r.labels]));
    expect(rules.map((r) => r.expr)).toEqual(shippedRules.map((r) => r.expr.replaceAll('[5m]', `[${testbedRateWindow}]`)));
    const file = join(mkdtempSync(join(tmpdir(), 'alert-rules-')), 'testbed-rules.yml');
    writeFileSync(file, copy);
    expect(promtool(['check', 'rules', file]).status).toBe(0);
  });

  test("the test bed's Prometheus evaluates that copy and sends to the test bed's Alertmanager", async () => {
    const env = testbedEnv();
    type Rules = { data: { groups: Array<{ name: string; rules: Array<{ name: string; duration: number; health: string }> }> } };
    const loaded = async () => ((await (await fetch(`${env.PROMETHEUS_URL}/api/v1/rules?type=alert`)).json()) as Rules).data.groups.find((g) => g.name === 'runbook-alerts')?.rules ?? [];
    // Health is "unknown" until the first evaluation (every 2 s) after a start.
    await waitUntil('the alert rules evaluated', async () => (await loaded()).every((r) => r.health !== 'unknown'), 30_000);
    expect((await loaded()).map((r) => [r.name, r.duration, r.health])).toEqual(shippedRules.map((r) => [r.alert, 0, 'ok']));
    const managers = (await (await fetch(`${env.PROMETHEUS_URL}/api/v1/alertmanagers`)).json()) as { data: { activeAlertmanagers: Array<{ url: string }> } };
    expect(managers.data.activeAlertmanagers.map((a) => a.url)).toEqual([`${env.TESTBED_ALERTMANAGER_URL}/api/v2/alerts`]);
  });
});
