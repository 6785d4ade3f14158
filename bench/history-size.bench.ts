import { catalog } from '../common/catalog';
import { loadConfig } from '../config/load';
import { connectClient } from '../config/temporal-connection';
import { readTestbedEnv } from '../scripts/testbed';

/**
 * Issue 19 (3): the workflow history size of every runbook, from real runs in the sandbox: for each
 * catalog runbook, its finished runs on the test bed's Temporal server (those `npm test` or people
 * made there), the largest by the server's own count (historySizeBytes, the size Temporal stores and
 * limits), with its events. Goal: at most 256 KiB each, far under Temporal's 10 MiB warning.
 */
const goalBytes = 256 * 1024;
/** The newest finished runs looked at per runbook. */
const runsPerRunbook = 200;

const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;

export default async function bench(): Promise<void> {
  const config = loadConfig({ env: readTestbedEnv() });
  const { client, close } = await connectClient(config.temporal);
  try {
    console.log(`history size: the largest of the newest ${runsPerRunbook} finished runs of each runbook on the sandbox's Temporal; goal <= ${kib(goalBytes)}`);
    console.log('| runbook | runs looked at | largest | events | goal |');
    console.log('|---|---|---|---|---|');
    for (const name of Object.keys(catalog).sort()) {
      let runs = 0;
      let largest: { size: number; events: number; workflowId: string } | undefined;
      for await (const run of client.workflow.list({ query: `WorkflowType = '${name}' AND ExecutionStatus != 'Running'`, pageSize: 100 })) {
        if (++runs > runsPerRunbook) break;
        const size = run.historySize ?? 0;
        if (!largest || size > largest.size) largest = { size, events: run.historyLength, workflowId: run.workflowId };
      }
      if (!largest) console.log(`| ${name} | 0 | no finished run in the sandbox yet (run npm test first) | | |`);
      else console.log(`| ${name} | ${Math.min(runs, runsPerRunbook)} | ${kib(largest.size)} (${largest.workflowId}) | ${largest.events} | ${largest.size <= goalBytes ? 'met' : 'NOT met'} |`);
    }
  } finally {
    await close();
  }
}
