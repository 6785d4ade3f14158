import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { repoRoot } from './process-output';

export const dashboardFile = join(repoRoot, 'deploy', 'grafana', 'runbook-dashboard.json');

/** Every query runs on the Prometheus the dashboard's datasource variable picks. */
const datasource = z.object({ type: z.literal('prometheus'), uid: z.literal('${datasource}') }).strict();

const target = z.object({ refId: z.string().min(1), datasource, expr: z.string().min(1), legendFormat: z.string().optional(), instant: z.boolean().optional() }).strict();

const gridPos = z.object({ x: z.number().int().min(0), y: z.number().int().min(0), w: z.number().int().min(1).max(24), h: z.number().int().min(1) });

const row = z.object({ id: z.number().int(), type: z.literal('row'), title: z.string().min(1), collapsed: z.boolean(), gridPos, panels: z.array(z.unknown()).length(0) }).strict();

const panel = z
  .object({
    id: z.number().int(),
    type: z.enum(['timeseries', 'bargauge', 'stat', 'table']),
    title: z.string().min(1),
    description: z.string().min(1),
    datasource,
    gridPos,
    targets: z.array(target).min(1),
    fieldConfig: z.object({ defaults: z.object({ unit: z.string().min(1) }).passthrough(), overrides: z.array(z.unknown()) }),
    options: z.record(z.string(), z.unknown()),
  })
  .strict();

const queryVariable = z
  .object({ name: z.string().min(1), type: z.literal('query'), datasource, query: z.object({ query: z.string().min(1), refId: z.string() }), definition: z.string().min(1) })
  .passthrough();

/** What Grafana needs of a dashboard to import it (a subset of its JSON model), and what this project demands of its own. */
export const dashboardSchema = z
  .object({
    title: z.string().min(1),
    uid: z.string().regex(/^[a-zA-Z0-9_-]{1,40}$/),
    schemaVersion: z.number().int().min(36),
    time: z.object({ from: z.string(), to: z.string() }),
    templating: z.object({
      list: z.tuple([z.object({ name: z.literal('datasource'), type: z.literal('datasource'), query: z.literal('prometheus') }).passthrough()]).rest(queryVariable),
    }),
    panels: z.array(z.union([row, panel])).min(1),
  })
  .passthrough();

export type Dashboard = z.infer<typeof dashboardSchema>;

export function readDashboard(): Dashboard {
  return dashboardSchema.parse(JSON.parse(readFileSync(dashboardFile, 'utf8')));
}

/** Each panel target's query with its panel's title, as written (variables unsubstituted). */
export function dashboardQueries(dashboard: Dashboard): Array<{ panel: string; refId: string; expr: string }> {
  return dashboard.panels.flatMap((p) => (p.type === 'row' ? [] : p.targets.map((t) => ({ panel: p.title, refId: t.refId, expr: t.expr }))));
}

/** A query with its variables replaced (`$name` and `${name}`); a variable without a value stays, so Prometheus refuses the query. */
export function substitute(expr: string, values: Record<string, string>): string {
  return expr.replace(/\$\{(\w+)\}|\$(\w+)/g, (whole, braced?: string, bare?: string) => values[(braced ?? bare)!] ?? whole);
}
