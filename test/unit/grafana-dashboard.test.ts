import { readFileSync } from 'node:fs';
import { runbookMetrics } from '../../common/runbook-metrics';
import { dashboardFile, dashboardQueries, readDashboard } from '../helpers/grafana-dashboard';

/**
 * deploy/grafana/runbook-dashboard.json as Grafana imports it: its JSON model, the datasource a
 * variable, and every runbook_* metric charted by names the worker exports. That each query
 * returns data is test/worker-metrics.test.ts, against the test bed's Prometheus.
 */
describe('the Grafana dashboard (deploy/grafana)', () => {
  const dashboard = readDashboard();
  const queries = dashboardQueries(dashboard);

  test('is a dashboard of a current schema, the datasource and every filter variables, panel ids and places unique', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(['datasource', 'job', 'task_queue', 'runbook']);
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const places = dashboard.panels.map((p) => `${p.gridPos.x},${p.gridPos.y}`);
    expect(new Set(places).size).toBe(places.length);
    for (const p of dashboard.panels) expect(p.gridPos.x + p.gridPos.w).toBeLessThanOrEqual(24);
    // No datasource uid of one Grafana written in: the file imports anywhere.
    expect(readFileSync(dashboardFile, 'utf8')).not.toMatch(/"uid": "(?!\$\{datasource\}|runbook-automation")/);
  });

  test('every query filters by the variables and uses only those and Grafana’s own', () => {
    for (const { panel, expr } of queries) {
      const used = [...expr.matchAll(/\$(\w+)/g)].map((m) => m[1]);
      expect({ panel, unknown: used.filter((v) => !['job', 'task_queue', 'runbook', '__range', '__rate_interval'].includes(v!)) }).toEqual({ panel, unknown: [] });
      for (const filter of ['job=~"$job"', 'taskQueue=~"$task_queue"', 'runbook=~"$runbook"']) expect({ panel, expr }).toEqual({ panel, expr: expect.stringContaining(filter) });
    }
  });

  test('charts every runbook_* metric the worker exports, by their exported names only', () => {
    const exported = Object.values(runbookMetrics).flatMap(({ name }) => (name.endsWith('_seconds') ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name]));
    const charted = new Set(queries.flatMap(({ expr }) => expr.match(/\brunbook_\w+/g) ?? []));
    expect([...charted].filter((name) => !exported.includes(name))).toEqual([]);
    for (const { name } of Object.values(runbookMetrics)) expect([...charted].some((c) => c.startsWith(name))).toBe(true);
  });
});
