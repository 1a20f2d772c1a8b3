// Opens an `agentmon report --html` page in headless Chromium (Debian's,
// driven by playwright-core), takes a full-page screenshot and prints one
// JSON object for tests/tests/report_html.rs to judge: every chart's SVG
// and its size, the headings, console errors, page errors, and every
// request the page made (a self-contained page makes none but itself).
//
// node report.mjs PAGE.html SCREENSHOT.png
// PLAYWRIGHT_DIR: where `cargo xtask setup test` installed playwright-core.
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [pagePath, screenshot] = process.argv.slice(2);
if (!pagePath || !screenshot) {
  console.error('usage: node report.mjs PAGE.html SCREENSHOT.png');
  process.exit(2);
}
const toolsDir = process.env.PLAYWRIGHT_DIR || '/var/lib/agentmon/tools/playwright';
const { chromium } = createRequire(join(toolsDir, 'package.json'))('playwright-core');

const profile = mkdtempSync(join(tmpdir(), 'agentmon-chromium-'));
// The machine's network is closed: without the background-networking
// flags Chromium keeps trying to reach Google's hosts. --user-data-dir is
// launchPersistentContext's first argument.
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
  viewport: { width: 1100, height: 900 },
});
const result = { consoleErrors: [], pageErrors: [], requests: [] };
try {
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') result.consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => result.pageErrors.push(String(e)));
  page.on('request', (r) => result.requests.push(r.url()));
  const url = pathToFileURL(resolve(pagePath)).href;
  await page.goto(url, { waitUntil: 'load' });
  Object.assign(result, await page.evaluate(() => ({
    url: location.href,
    title: document.title,
    headings: [...document.querySelectorAll('h2')].map((h) => h.textContent),
    charts: [...document.querySelectorAll('section.chart')].map((s) => {
      const svg = s.querySelector('svg');
      const box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
      return {
        id: s.id,
        title: s.querySelector('h2')?.textContent,
        width: box.width,
        height: box.height,
        // What plotters drew: bars and lines, and the texts of the axes.
        shapes: svg ? svg.querySelectorAll('rect, polyline, path, circle').length : 0,
        texts: svg ? [...svg.querySelectorAll('text')].map((t) => t.textContent.trim()) : [],
      };
    }),
    svgs: [...document.querySelectorAll('svg')].map((svg) => {
      const box = svg.getBoundingClientRect();
      return { width: box.width, height: box.height };
    }),
    tableRows: document.querySelectorAll('tbody tr').length,
    // Wider than the window: the reader would have to scroll sideways.
    pageWidth: document.documentElement.scrollWidth,
    windowWidth: window.innerWidth,
    images: document.querySelectorAll('img').length,
    scripts: document.querySelectorAll('script').length,
    pwned: Boolean(window.__pwned),
  })));
  await page.screenshot({ path: screenshot, fullPage: true });
  result.screenshot = screenshot;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
