// Drives Debian's chromium with playwright-core: opens /map on the server at
// SERVER_URL, checks that the collection is drawn from its tiles untouched
// (FIRST_SCREENSHOT) and names France on hover, clicks Paris, and checks
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
const firstScreenshot = process.env.FIRST_SCREENSHOT;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
if (!url || !screenshot || !firstScreenshot || !basemapURL || !tileURL) {
  console.error('SERVER_URL, SCREENSHOT, FIRST_SCREENSHOT, BASEMAP_SERVER_URL and TILE_SERVER_URL must be set');
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
  // At first sight, untouched: the collection is listed, ticked and drawn
  // from its tiles over the world outline.
  await page.waitForSelector('#collections input[type=checkbox]#draw-default');
  seen.collections = await page.$$eval('#collections li.collection label', (ls) => ls.map((l) => l.textContent));
  seen.checked = await page.$eval('#draw-default', (b) => b.checked);
  await page.waitForFunction(() => / drawn$/.test(document.querySelector('#collections li.collection span:last-child').textContent)
    && document.querySelectorAll('path.drawn').length > 100);
  seen.drawn = await page.$eval('#collections li.collection span:last-child', (s) => s.textContent.trim());
  // Where France's interior and the open Atlantic are in the page, for the
  // pixels of the screenshot; and the colours the page draws with.
  const where = (lat, lng) => page.evaluate(([lat, lng]) => {
    const p = window.searchMap.latLngToContainerPoint([lat, lng]);
    const r = document.getElementById('map').getBoundingClientRect();
    return { x: Math.round(r.left + p.x), y: Math.round(r.top + p.y) };
  }, [lat, lng]);
  seen.france = [await where(46.5, 2.5), await where(47.2, 0.5), await where(45.2, 4.0)];
  // Far east, in the last column of tiles: Australia.
  seen.australia = [await where(-25, 134), await where(-22, 125), await where(-30, 145)];
  seen.atlantic = await where(30, -30);
  // Seas among the northern lands, where a tile filled whole would show.
  seen.seas = [await where(80, 0), await where(60, -85), await where(73, -65), await where(72, -140),
    await where(75, 65), await where(74, 160)];
  seen.style = await page.evaluate(() => window.searchMapStyle);
  await page.waitForTimeout(300); // the last tile's paint
  await page.screenshot({ path: process.env.FIRST_SCREENSHOT });
  // Names on hover.
  await page.mouse.move(seen.france[0].x, seen.france[0].y);
  await page.waitForSelector('.hover-name');
  seen.hoverName = await page.$eval('.hover-name', (e) => e.textContent);
  seen.tileRequestsAtFirstSight = seen.requests.filter((u) => u.includes('/tiles/WebMercatorQuad/')).length;
  seen.itemsRequestsAtFirstSight = seen.requests.filter((u) => u.includes('/items')).length;
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
  // The Norwegian Sea, in the Arctic Ocean: no country (read flat, Russia's
  // rings across the antimeridian covered it).
  await page.evaluate(() => window.searchMap.setView([71, 0], 4, { animate: false }));
  const arctic = await page.evaluate(() => {
    const p = window.searchMap.latLngToContainerPoint([71, 0]);
    const r = document.getElementById('map').getBoundingClientRect();
    return { x: r.left + p.x, y: r.top + p.y };
  });
  await page.mouse.click(arctic.x, arctic.y);
  await page.waitForFunction(() => document.getElementById('clicked').dataset.located !== undefined);
  seen.arcticLocated = await page.$eval('#clicked', (e) => e.dataset.located);
  seen.arcticHighlighted = await page.$$eval('path.highlight', (ps) => ps.length);
  await page.evaluate(() => window.searchMap.setView([47, 2.5], 5, { animate: false }));
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
