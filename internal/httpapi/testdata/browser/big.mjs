// Drives Debian's chromium with playwright-core: opens /map#10/LAT/LNG on
// the server at SERVER_URL, whose one collection is large, and waits until
// it is drawn from its tiles untouched (every tile of the window loaded,
// the status "drawn", paths on the page); screenshot to SCREENSHOT; then
// zooms out to each of ZOOMS_OUT and waits for it to be drawn again. Reports the
// time each draw took, where the sample points are in the page and the
// tiles answered (the server's access log has their sizes).
// Run by TestMapDrawsABigCollection (map_big_test.go); prints one JSON line
// with what it saw, and exits non-zero on any failure. STEP_TIMEOUT_MS is
// a hang guard, not a speed target.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const url = process.env.SERVER_URL;
const screenshot = process.env.SCREENSHOT;
const collection = process.env.COLLECTION;
const [lat, lng] = (process.env.CENTRE || '').split(',').map(Number);
const zoomsOut = (process.env.ZOOMS_OUT || '6').split(',').map(Number);
const points = JSON.parse(process.env.POINTS || '[]');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
if (!url || !screenshot || !collection || Number.isNaN(lat) || Number.isNaN(lng)) {
  console.error('SERVER_URL, SCREENSHOT, COLLECTION and CENTRE must be set');
  process.exit(2);
}
const profile = mkdtempSync(join(tmpdir(), 'map-big-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  viewport: { width: 1200, height: 700 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
    '--no-first-run', '--disable-component-update', '--disable-sync'],
});
const seen = { tiles: [], pageErrors: [], failedTiles: [] };
try {
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(Number(process.env.STEP_TIMEOUT_MS || 60000));
  page.on('pageerror', (e) => { seen.pageErrors.push(String(e)); console.error('page error:', String(e)); });
  page.on('console', (m) => console.error('console:', m.type(), m.text()));
  page.on('response', (r) => {
    if (!r.url().includes('/tiles/WebMercatorQuad/')) return;
    if (r.status() !== 200 && r.status() !== 204) { seen.failedTiles.push(r.status() + ' ' + r.url()); return; }
    seen.tiles.push(r.url().slice(url.length));
  });
  const drawn = async () => {
    await page.waitForFunction((id) => {
      const status = document.querySelector('#draw-' + id + ' ~ span:last-child');
      return status && / drawn$/.test(status.textContent) && document.querySelectorAll('path.drawn').length > 0;
    }, collection, { polling: 100 });
    return page.$$eval('path.drawn', (ps) => ps.length);
  };
  let start = Date.now();
  await page.goto(url + '/map#10/' + lat + '/' + lng);
  seen.paths = await drawn();
  seen.drawMs = Date.now() - start;
  seen.zoom = await page.evaluate(() => window.searchMap.getZoom());
  seen.style = await page.evaluate(() => window.searchMapStyle);
  // The collection's colour is the palette's at its place in the list.
  seen.listed = await page.$$eval('#collections li.collection input[type=checkbox]', (bs) => bs.map((b) => b.id.slice('draw-'.length)));
  seen.points = await page.evaluate((pts) => {
    const r = document.getElementById('map').getBoundingClientRect();
    return pts.map(([la, ln]) => {
      const p = window.searchMap.latLngToContainerPoint([la, ln]);
      return { x: Math.round(r.left + p.x), y: Math.round(r.top + p.y) };
    });
  }, points);
  await page.waitForTimeout(300); // the last tile's paint
  await page.screenshot({ path: screenshot });
  seen.tilesAtZoom10 = seen.tiles.length;
  seen.zoomedOut = [];
  for (const z of zoomsOut) {
    start = Date.now();
    await page.evaluate((z) => window.searchMap.setZoom(z, { animate: false }), z);
    await page.waitForFunction((z) => window.searchMap.getZoom() === z, z);
    await page.waitForTimeout(200); // the layer starts loading its new tiles
    const paths = await drawn();
    seen.zoomedOut.push({ zoom: z, paths, ms: Date.now() - start });
  }
  console.log(JSON.stringify(seen));
} catch (e) {
  console.error(e);
  console.log(JSON.stringify(seen));
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
