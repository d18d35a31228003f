// Drives Debian's chromium with playwright-core: opens /map on the server at
// SERVER_URL, checks the collection is listed, clicks Paris, and checks
// that France is highlighted and named; searches a name; lists and outlines
// the things in the window. Writes a screenshot to SCREENSHOT. Then opens
// /map on BASEMAP_SERVER_URL, a server configured with a basemap at
// TILE_SERVER_URL, and counts the tiles loaded.
// Run by TestMapInBrowser (map_browser_test.go); prints one JSON line with
// what it saw, and exits non-zero on any failure.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const url = process.env.SERVER_URL;
const basemapURL = process.env.BASEMAP_SERVER_URL;
const tileURL = process.env.TILE_SERVER_URL;
const screenshot = process.env.SCREENSHOT;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
if (!url || !screenshot || !basemapURL || !tileURL) {
  console.error('SERVER_URL, SCREENSHOT, BASEMAP_SERVER_URL and TILE_SERVER_URL must be set');
  process.exit(2);
}
const profile = mkdtempSync(join(tmpdir(), 'map-test-chromium-'));
// A fresh profile each run: launchPersistentContext is how playwright takes
// --user-data-dir.
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  viewport: { width: 1200, height: 700 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
    '--no-first-run', '--disable-component-update', '--disable-sync'],
});
const seen = { requests: [], outside: [] };
try {
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(Number(process.env.STEP_TIMEOUT_MS || 60000));
  const pageErrors = [];
  seen.pageErrors = pageErrors;
  page.on('pageerror', (e) => { pageErrors.push(String(e)); console.error('page error:', String(e)); });
  page.on('console', (m) => console.error('console:', m.type(), m.text()));
  page.on('response', (r) => { if (r.status() >= 400) console.error('response:', r.status(), r.url()); });
  page.on('request', (r) => {
    seen.requests.push(r.url());
    if (![url, basemapURL, tileURL].some((u) => r.url().startsWith(u + '/'))) seen.outside.push(r.url());
  });
  await page.goto(url + '/map');
  // The collection is listed and can be drawn.
  await page.waitForSelector('#collections input[type=checkbox]#draw-default');
  seen.collections = await page.$$eval('#collections li.collection label', (ls) => ls.map((l) => l.textContent));
  await page.check('#draw-default');
  await page.waitForFunction(() => /\d+ drawn/.test(document.querySelector('#collections li.collection span').textContent)
    && !/drawing/.test(document.querySelector('#collections li.collection span').textContent));
  seen.drawn = await page.$eval('#collections li.collection span', (s) => s.textContent.trim());
  // Zoom to France and click Paris.
  await page.evaluate(() => window.searchMap.setView([47, 2.5], 5, { animate: false }));
  const pt = await page.evaluate(() => {
    const p = window.searchMap.latLngToContainerPoint([48.85, 2.35]);
    const r = document.getElementById('map').getBoundingClientRect();
    return { x: r.left + p.x, y: r.top + p.y };
  });
  await page.mouse.click(pt.x, pt.y);
  await page.waitForFunction(() => document.getElementById('clicked').dataset.located !== undefined);
  seen.located = await page.$eval('#clicked', (e) => e.dataset.located);
  seen.scope = await page.$eval('#clicked', (e) => e.dataset.scope);
  seen.panel = await page.$eval('#clicked', (e) => e.textContent);
  seen.highlighted = await page.$$eval('path.highlight', (ps) => ps.length);
  // The name search and the window's bbox.
  await page.fill('#search', 'fran');
  await page.click('#search-form button');
  await page.waitForSelector('#search-results li');
  seen.search = await page.$$eval('#search-results li', (ls) => ls.map((l) => l.textContent));
  seen.bbox = await page.$eval('#bbox', (e) => e.textContent);
  await page.click('#in-view');
  await page.waitForSelector('#view-results li');
  seen.inView = await page.$$eval('#view-results li', (ls) => ls.map((l) => l.textContent));
  seen.inViewOutlined = await page.$$eval('path.inview', (ps) => ps.length);
  // Nearest: a click in the sea off Marseille is in no country, and within
  // 50 km of France.
  const sea = await page.evaluate(() => {
    const p = window.searchMap.latLngToContainerPoint([43.0, 5.3]);
    const r = document.getElementById('map').getBoundingClientRect();
    return { x: r.left + p.x, y: r.top + p.y };
  });
  await page.mouse.click(sea.x, sea.y);
  await page.waitForFunction(() => document.getElementById('clicked').dataset.located !== undefined);
  seen.seaLocated = await page.$eval('#clicked', (e) => e.dataset.located);
  await page.fill('#near', '50');
  await page.mouse.click(sea.x, sea.y);
  await page.waitForFunction(() => document.getElementById('clicked').dataset.located !== undefined);
  seen.nearLocated = await page.$eval('#clicked', (e) => e.dataset.located);
  seen.nearPanel = await page.$eval('#clicked', (e) => e.textContent);
  await page.fill('#near', '');
  // Back to Paris's answer for the picture.
  await page.mouse.click(pt.x, pt.y);
  await page.waitForFunction(() => document.querySelectorAll('path.highlight').length > 0);
  await page.screenshot({ path: screenshot });
  // A configured basemap: its tiles load, from the tile server only.
  const tilesBefore = seen.requests.filter((u) => u.startsWith(tileURL + '/')).length;
  await page.goto(basemapURL + '/map');
  await page.waitForSelector('img.leaflet-tile-loaded');
  seen.tilesLoaded = await page.$$eval('img.leaflet-tile-loaded', (ts) => ts.length);
  seen.tileRequests = seen.requests.filter((u) => u.startsWith(tileURL + '/')).length - tilesBefore;
  seen.attribution = await page.$eval('.leaflet-control-attribution', (e) => e.textContent);
  seen.pageErrors = pageErrors;
  delete seen.requests;
  console.log(JSON.stringify(seen));
} catch (err) {
  for (const p of context.pages()) console.error('panel:', await p.$eval('#panel', (e) => e.innerText).catch((e) => String(e)));
  throw err;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
