import { randomUUID } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { parse } from 'yaml';
import { createRunbookClient } from '../client/runbook-client';
import { runbookMode, runbookRunsUrl, runbookSearchAttributeKeys } from '../common/search-attributes';
import { waitUntil } from '../scripts/testbed/processes';
import { repoRoot } from './helpers/process-output';
import { TestTargets } from './helpers/test-target';
import { testbedConfig, testbedEnv, unsignedTeam } from './helpers/testbed';
import { withWorker } from './helpers/worker';

/** Debian's Chromium, driven by playwright-core (no browser download). */
const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** The runbook list's own columns: the search attributes every run sets (common/search-attributes.ts). */
const runbookColumns = runbookSearchAttributeKeys.filter((key) => key !== runbookMode).map((key) => key.name);
/** Screenshots of the walkthrough, kept after the run (the README shows the way). */
const screenshotDir = join(repoRoot, '.testbed', 'artifacts', 'ui');
/** The README's pictures (docs/ui/), taken by this test: `npm run docs:screenshots` puts new ones there. */
const docsScreenshots: Record<string, string> = { '2-pending-runs': 'runbook-runs', '3-current-details': 'current-details' };

/**
 * An SRE's way through the Temporal Web UI, in a real browser against the sandbox's UI: start a
 * runbook from the Start Workflow form, find it waiting for approval with a search-attribute
 * filter, read the plan in Current Details, approve it with the UI's Update dialog, see it finish.
 */
describe('the Temporal Web UI as the SRE sees it (headless Chromium)', () => {
  let browser: Browser;
  const targets = new TestTargets();
  const config = testbedConfig({ RUNBOOK_APPROVERS: JSON.stringify(unsignedTeam) });
  const ui = testbedEnv().TEMPORAL_UI_URL!;

  beforeAll(async () => {
    if (!existsSync(chromiumPath)) throw new Error(`no Chromium at ${chromiumPath}: .ci/run installs the Debian package chromium`);
    rmSync(screenshotDir, { recursive: true, force: true });
    mkdirSync(screenshotDir, { recursive: true });
    browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
  });
  afterAll(async () => {
    await browser?.close();
    if (process.env.UPDATE_DOCS_SCREENSHOTS === '1') {
      for (const [shot, doc] of Object.entries(docsScreenshots)) copyFileSync(join(screenshotDir, `${shot}.png`), join(repoRoot, 'docs', 'ui', `${doc}.png`));
    }
  });

  const shot = (page: Page, name: string) => page.screenshot({ path: join(screenshotDir, `${name}.png`), fullPage: true });

  test('start from the form, filter by approval state, read the plan, approve by Update, see it finish', async () => {
    const target = `ui/${randomUUID().slice(0, 8)}`;
    const workflowId = `kernelTestRunbook/${target}`;
    await withWorker(
      config,
      async ({ client }) => {
        const runbooks = createRunbookClient({ client, taskQueue: config.temporal.taskQueue });
        const page = await browser.newPage({ viewport: { width: 1700, height: 1000 } });
        try {
          // 1. Start Workflow form.
          await page.goto(`${ui}/namespaces/${config.temporal.namespace}/workflows/start-workflow`);
          await page.getByTestId('workflowId').fill(workflowId);
          await page.getByTestId('taskQueue').fill(config.temporal.taskQueue);
          await page.getByTestId('workflowType').fill('kernelTestRunbook');
          const input = { target, mode: 'execute', severity: 'P1', startedBy: 'erin', steps: [{ id: 'restart', title: 'Restart the app' }] };
          await page.getByLabel('Data').click();
          await page.keyboard.insertText(JSON.stringify(input));
          await page.getByTestId('workflowType').click(); // the editor formats its JSON when it loses focus
          await shot(page, '1-start-workflow-form');
          await page.getByTestId('start-workflow-button').click();
          await waitUntil('the run started from the form', () =>
            client.workflow
              .getHandle(workflowId)
              .describe()
              .then(
                () => true,
                () => false,
              ),
          );

          // 2. The runbook view with the runbook's own columns (the UI keeps them per browser and namespace:
          // an SRE sets them once, as here), filtered to runs waiting for approval.
          await page.goto(runbookRunsUrl(ui, config.temporal.namespace));
          await page.getByTestId('workflows-summary-table-configuration-button').click();
          for (const column of ['Run ID', 'Type', 'Start', 'End']) await page.getByTestId(`orderable-list-item-${column}-remove-button`).click();
          for (const column of [...runbookColumns, 'Start']) await page.getByTestId(`orderable-list-item-${column}-add-button`).click();
          await page.getByTestId('drawer-close-button').click();
          // A run ended from outside (terminated) keeps the state it had: only running runs wait.
          const pendingView = `${runbookRunsUrl(ui, config.temporal.namespace)}${encodeURIComponent(' AND RunbookApprovalState = "pending" AND ExecutionStatus = "Running"')}`;
          await waitUntil('the run waiting for approval', async () => (await runbooks.getStatus(workflowId)).pending !== undefined);
          await waitUntil(
            'the run listed as pending in the UI',
            async () => {
              await page.goto(pendingView);
              return page
                .getByRole('link', { name: workflowId })
                .first()
                .waitFor({ timeout: 10_000 })
                .then(() => true)
                .catch(() => false);
            },
            90_000,
          );
          // The row says which runbook, how severe, on what, and that it waits for a decision.
          const headers = await page.getByRole('columnheader').allInnerTexts();
          expect(runbookColumns.every((column) => headers.some((header) => header.includes(column)))).toBe(true);
          const row = page.getByRole('row').filter({ hasText: workflowId }).first();
          const cells = (await row.getByRole('cell').allInnerTexts()).map((text) => text.trim());
          expect(cells).toEqual(expect.arrayContaining(['kernelTestRunbook', 'P1', target, 'pending']));
          await shot(page, '2-pending-runs');

          // 3. Current Details: the plan and how to decide it.
          await page.getByRole('link', { name: workflowId }).first().click();
          await page.getByText('User Metadata').click();
          // The UI renders Markdown in a sandboxed frame.
          const detailsFrame = page.frameLocator('iframe').first();
          const details = detailsFrame.getByText(/Waiting for a decision: .restart. \(Restart the app\)/);
          await details.waitFor().catch(async (err: unknown) => {
            await shot(page, '3-no-details');
            throw err;
          });
          const codes = await detailsFrame.locator('code').allInnerTexts();
          const planHash = codes.map((text) => text.replace(/\s/g, '')).find((text) => /^[0-9a-f]{64}$/.test(text));
          expect(planHash).toMatch(/^[0-9a-f]{64}$/);
          await shot(page, '3-current-details');

          // 4. The Update dialog: approve, with the input Current Details shows.
          await page.getByRole('button', { name: 'More Actions' }).click();
          await page.getByRole('menuitem', { name: 'Send an Update' }).filter({ visible: true }).first().click();
          await page.getByRole('button', { name: 'Select an Update' }).click();
          // Each option shows the handler's description: the UI lists what the run answers and how.
          const approveOption = page.getByRole('option').filter({ hasText: 'Approve the step waiting for approval' }).first();
          await shot(page, '4-update-names');
          await approveOption.click();
          const decision = { stepId: 'restart', planHash, approver: 'bob', reason: 'approved from the Temporal UI' };
          const dialog = page.getByRole('dialog', { name: 'Send an Update' });
          await dialog.getByRole('textbox', { name: 'Data' }).click();
          await page.keyboard.insertText(JSON.stringify(decision));
          await dialog.getByText('Update ID (optional)').click(); // the editor formats its JSON when it loses focus
          await shot(page, '4-update-dialog');
          await dialog.getByRole('button', { name: 'Submit' }).click();

          // 5. It finishes, applied once, and the UI says so.
          expect(await client.workflow.getHandle(workflowId).result()).toMatchObject({ outcome: 'completed' });
          expect(targets.applies).toEqual([{ target, stepId: 'restart' }]);
          const decided = (await runbooks.getStatus(workflowId)).timeline.find((e) => e.event === 'decided');
          expect(decided).toMatchObject({ by: 'bob', channel: 'update', reason: 'approved from the Temporal UI' });
          await page.reload();
          await page.getByText('Completed', { exact: false }).first().waitFor();
          await page.getByText('User Metadata').click();
          await detailsFrame.getByText('finished: completed', { exact: true }).waitFor();
          await shot(page, '5-finished');
        } finally {
          await page.close();
        }
      },
      { workflowsPath: require.resolve('./workflows'), activities: targets.activities() },
    );
  });

  test("docker-compose's UI image is the UI version the sandbox runs", async () => {
    const compose = parse(readFileSync(join(repoRoot, 'docker-compose.yml'), 'utf8')) as { services: Record<string, { image: string }> };
    const settings = (await (await fetch(`${ui}/api/v1/settings`)).json()) as { Version: string };
    expect(compose.services['temporal-ui']!.image).toBe(`temporalio/ui:${settings.Version}`);
  });
});
