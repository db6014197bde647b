// Signs in through Perch's hosted login in a real (headless) Chromium: the
// login link, the sandbox's sign-in form typed into and submitted, and the
// redirect back to the tenant. Prints the final URL as one JSON line.
//
// usage: node login.js <start-url> <username> <password> <screenshot-dir> [<click-first>]
// <click-first> is a selector clicked on the start page first (e.g. a site's
// "Sign in with Twitter" button); without it the start URL is the login link.
const { chromium } = require('playwright-core');
const path = require('path');

async function main() {
  const [startUrl, username, password, shots, clickFirst] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.PERCH_TEST_CHROMIUM || '/usr/bin/chromium',
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
    ],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
    await page.goto(startUrl);
    if (clickFirst) {
      await page.screenshot({ path: path.join(shots, '0-site.png') });
      await Promise.all([page.waitForURL((url) => url.href !== startUrl), page.click(clickFirst)]);
    }
    await page.screenshot({ path: path.join(shots, '1-sign-in.png') });
    await page.fill('input[type=text]', username);
    await page.fill('input[type=password]', password);
    await Promise.all([
      page.waitForURL((url) => url.searchParams.has('code') || url.searchParams.has('error')),
      page.click('button[name=allow]'),
    ]);
    await page.screenshot({ path: path.join(shots, '2-back-at-the-site.png') });
    console.log(JSON.stringify({ url: page.url() }));
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
