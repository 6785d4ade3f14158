import { chromium } from 'playwright-core';
(async () => {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  const ui = process.env.UI!;
  await page.goto(`${ui}/namespaces/default/workflows/${encodeURIComponent(process.env.WF!)}`);
  await page.getByRole('button', { name: 'More Actions' }).click();
  await page.waitForTimeout(500);
  console.log((await page.locator('[role=menuitem], li').evaluateAll((els) => els.filter((e) => (e as HTMLElement).offsetParent !== null).map((e) => `${e.tagName} testid=${e.getAttribute('data-testid')} text=${(e.textContent||'').trim().slice(0,40)}`))).join('\n'));
  await page.screenshot({ path: '/tmp/ui-menu.png' });
  await page.keyboard.press('Escape');
  await page.getByRole('tab', { name: 'User Metadata' }).click().catch(async () => { await page.getByText('User Metadata').click(); });
  await page.waitForTimeout(2000);
  await page.screenshot({ path: '/tmp/ui-meta.png', fullPage: true });
  await browser.close();
})();
