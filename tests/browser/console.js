// Drives the system Chromium through Perch's web console as a tenant
// would, with axe-core run on every page (serious and critical violations
// are reported) and a screenshot of each. Prints one JSON line.
//
// usage: node console.js tour <base-url> <api-key> <screenshot-dir> <operator-token>
//        node console.js no-script <base-url> <api-key> <screenshot-dir>
// `tour` expects the tenant's first app to have a linked account `alice`.
const { chromium } = require('playwright-core');
const fs = require('fs');
const path = require('path');

const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

async function visit(page, name, out, shots) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
  out.pages.push(name);
  if (!out.axe) return;
  // Evaluated through the DevTools protocol, which the pages' policy
  // (scripts from the console's own files only) does not govern.
  await page.evaluate(AXE);
  const results = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  // How many rules axe applied and passed: proof that it ran at all.
  out.axe_checked.push({ page: name, passes: results.passes.length });
  for (const v of results.violations) {
    if (v.impact === 'serious' || v.impact === 'critical') {
      out.violations.push({
        page: name, id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.map((n) => n.target.join(' ')),
      });
    }
  }
}

async function submit(page, name) {
  await Promise.all([page.waitForNavigation(), page.getByRole('button', { name, exact: true }).click()]);
}

async function signIn(page, base, key, out, shots) {
  await page.goto(`${base}/console/sign-in`);
  await visit(page, 'sign-in', out, shots);
  if (out.axe) {
    await page.fill('#credential', 'perch_sk_not-a-key');
    await submit(page, 'Sign in');
    await page.locator('#credential-error').waitFor();
    await visit(page, 'sign-in-error', out, shots);
  }
  await page.fill('#credential', key);
  await submit(page, 'Sign in');
  if (!page.url().endsWith('/console/overview')) throw new Error(`after sign-in: ${page.url()}`);
}

async function tour(page, base, key, out, shots, operatorToken) {
  await signIn(page, base, key, out, shots);
  await visit(page, 'overview', out, shots);
  await Promise.all([page.waitForNavigation(), page.getByRole('link', { name: 'Apps', exact: true }).click()]);
  await visit(page, 'apps', out, shots);
  await Promise.all([page.waitForNavigation(), page.getByRole('link', { name: 'Create an app' }).click()]);
  await visit(page, 'app-new', out, shots);

  await page.fill('#name', 'Console App');
  await page.selectOption('#provider', 'sandbox');
  await page.fill('#callback_urls', 'https://console.example/cb\nhttp://console.example/cb');
  await submit(page, 'Create app');
  out.callback_error = (await page.locator('#callback-error').textContent()).trim();
  await visit(page, 'app-new-refused', out, shots);
  await page.fill('#callback_urls', 'https://console.example/cb');
  await submit(page, 'Create app');
  const first = (await page.locator('#client-secret').textContent()).trim();
  await visit(page, 'app-created', out, shots);
  // The console's script shows a Copy button beside the secret; it copies
  // the secret and says so in its live region.
  await page.getByRole('button', { name: 'Copy', exact: true }).click();
  await page.locator('#client-secret-status', { hasText: 'Copied' }).waitFor();
  out.copied = (await page.evaluate(() => navigator.clipboard.readText())) === first;

  await submit(page, 'Rotate client secret');
  out.secret = (await page.locator('#client-secret').textContent()).trim();
  if (out.secret === first) throw new Error('rotation showed the old secret');
  await visit(page, 'app-rotated', out, shots);
  await Promise.all([page.waitForNavigation(), page.getByRole('link', { name: 'Delete app…' }).click()]);
  await visit(page, 'app-delete-confirm', out, shots);
  await Promise.all([page.waitForNavigation(), page.getByRole('link', { name: 'Cancel' }).click()]);

  await Promise.all([page.waitForNavigation(), page.getByRole('link', { name: 'Accounts', exact: true }).click()]);
  await page.fill('#screen_name', 'alice');
  await submit(page, 'Search');
  await visit(page, 'accounts', out, shots);
  await Promise.all([page.waitForNavigation(), page.getByRole('link', { name: '@alice' }).click()]);
  await visit(page, 'account', out, shots);
  await Promise.all([page.waitForNavigation(), page.getByRole('link', { name: 'Unlink account…' }).click()]);
  await visit(page, 'account-unlink-confirm', out, shots);
  await submit(page, 'Unlink account');
  await visit(page, 'accounts-after-unlink', out, shots);

  await Promise.all([page.waitForNavigation(), page.getByRole('link', { name: 'Audit log', exact: true }).click()]);
  await page.fill('#action', 'account.delete');
  await submit(page, 'Filter');
  if ((await page.locator('td code', { hasText: 'account.delete' }).count()) !== 1) {
    throw new Error('the unlink is not in the audit log');
  }
  await page.locator('summary').first().click();
  await page.locator('pre.json').first().waitFor();
  await visit(page, 'audit', out, shots);
  await Promise.all([page.waitForNavigation(), page.getByRole('link', { name: 'API keys', exact: true }).click()]);
  await page.fill('#label', 'reporting');
  await page.getByLabel('apps:write').uncheck();
  await submit(page, 'Create key');
  await page.locator('#new-key').waitFor();
  await visit(page, 'api-keys', out, shots);
  const missing = await page.goto(`${base}/console/apps/app_00000000000000000000000000`);
  if (missing.status() !== 404) throw new Error(`an unknown app: ${missing.status()}`);
  await visit(page, 'not-found', out, shots);
  await page.goto(`${base}/console/overview`);
  await Promise.all([page.waitForNavigation(), page.getByRole('link', { name: 'Webhooks', exact: true }).click()]);
  await visit(page, 'webhooks', out, shots);
  await Promise.all([page.waitForNavigation(), page.getByRole('link', { name: 'New endpoint', exact: true }).click()]);
  await visit(page, 'webhook-new', out, shots);
  await page.fill('#url', 'ftp://hooks.example/in');
  await page.fill('#description', 'console tour');
  await submit(page, 'Create endpoint');
  await page.locator('#url-error').waitFor();
  await visit(page, 'webhook-new-refused', out, shots);
  await page.fill('#url', 'http://127.0.0.1:9/hook');
  await submit(page, 'Create endpoint');
  const firstHook = (await page.locator('#webhook-secret').textContent()).trim();
  await visit(page, 'webhook-created', out, shots);
  await submit(page, 'Send test event');
  await page.locator('td code', { hasText: 'webhook.test' }).waitFor();
  await visit(page, 'webhook-tested', out, shots);
  await Promise.all([
    page.waitForNavigation(),
    page.getByRole('button', { name: /^Redeliver / }).first().click(),
  ]);
  await visit(page, 'webhook-redelivered', out, shots);
  await submit(page, 'Disable endpoint');
  await visit(page, 'webhook-disabled', out, shots);
  await submit(page, 'Enable endpoint');
  await Promise.all([page.waitForNavigation(), page.getByRole('link', { name: 'Rotate secret…' }).click()]);
  await visit(page, 'webhook-rotate-confirm', out, shots);
  await submit(page, 'Rotate secret');
  out.webhook_secret = (await page.locator('#webhook-secret').textContent()).trim();
  if (out.webhook_secret === firstHook) throw new Error('rotation showed the old webhook secret');
  await visit(page, 'webhook-rotated', out, shots);
  await Promise.all([page.waitForNavigation(), page.getByRole('link', { name: 'OpenID Connect', exact: true }).click()]);
  await visit(page, 'oidc', out, shots);
  await submit(page, 'Sign out');
  await visit(page, 'signed-out', out, shots);

  // The operator's view.
  await page.fill('#credential', operatorToken);
  await submit(page, 'Sign in');
  await visit(page, 'operator', out, shots);
  await page.fill('#name', 'Browser Tenant');
  await submit(page, 'Create tenant');
  await visit(page, 'operator-tenant-created', out, shots);
  await Promise.all([page.waitForNavigation(), page.getByRole('link', { name: 'System health', exact: true }).click()]);
  await page.locator('#readiness').waitFor();
  await visit(page, 'operator-health', out, shots);
}

async function noScript(page, base, key, out, shots) {
  await signIn(page, base, key, out, shots);
  await page.goto(`${base}/console/apps/new`);
  await page.fill('#name', 'Scriptless App');
  await page.selectOption('#provider', 'sandbox');
  await page.fill('#callback_urls', 'https://scriptless.example/cb');
  await submit(page, 'Create app');
  out.secret = (await page.locator('#client-secret').textContent()).trim();
  // Without the script the Copy button stays hidden; the secret is text.
  out.copy_hidden = await page.locator('button[data-copy]').isHidden();
  await visit(page, 'no-script-app-created', out, shots);
}

async function main() {
  const [mode, base, key, shots, operatorToken] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.PERCH_TEST_CHROMIUM || '/usr/bin/chromium',
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
    ],
  });
  const scripted = mode !== 'no-script';
  const out = { pages: [], violations: [], axe: scripted, axe_checked: [] };
  try {
    const context = await browser.newContext({
      viewport: { width: 1100, height: 800 },
      javaScriptEnabled: scripted,
    });
    if (scripted) {
      await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
    }
    const page = await context.newPage();
    // Anything the pages' policy refused (an inline script, say) shows here.
    out.console_errors = [];
    page.on('console', (m) => {
      if (m.type() === 'error' && m.text().includes('Content Security Policy')) out.console_errors.push(m.text());
    });
    if (scripted) await tour(page, base, key, out, shots, operatorToken);
    else await noScript(page, base, key, out, shots);
    console.log(JSON.stringify(out));
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
