// The map page: every collection of the OGC API drawn at first sight from
// its vector tiles (Leaflet.VectorGrid), each in its colour, with names on
// hover; a click locates the point and highlights the things that contain
// it; a name search; the things in the current window. The background is
// a world outline shipped with the page (Natural Earth 1:110m), so it works
// without internet, unless the server configures a basemap.
(function () {
  'use strict';
  const body = document.body;
  // The view is in the address (#zoom/lat/lng), so that a view can be
  // shared and opened again; without one, the world at zoom 2.
  const inAddress = /^#(\d{1,2})\/(-?\d{1,2}(?:\.\d+)?)\/(-?\d{1,3}(?:\.\d+)?)$/.exec(location.hash);
  const map = L.map('map', { worldCopyJump: true })
    .setView(inAddress ? [Math.max(-85, Math.min(85, +inAddress[2])), +inAddress[3]] : [30, 10], inAddress ? Math.min(+inAddress[1], 22) : 2);
  map.on('moveend', () => {
    const c = map.getCenter();
    history.replaceState(null, '', '#' + map.getZoom() + '/' + c.lat.toFixed(4) + '/' + c.lng.toFixed(4));
  });
  window.searchMap = map; // for the browser test and the curious
  // The colours of the collections, in the order listed; the first few
  // collections are drawn when the page opens.
  const palette = ['#d95f02', '#1b9e77', '#7570b3', '#e7298a', '#66a61e', '#e6ab02', '#a6761d', '#1f78b4'];
  const land = '#f2efe9';
  const fillOpacity = 0.55;
  window.searchMapStyle = { palette, land, fillOpacity }; // for the browser test
  const tileURL = body.dataset.tileTemplate;
  if (tileURL) {
    L.tileLayer(tileURL, { attribution: body.dataset.tileAttribution || '', maxZoom: 19 }).addTo(map);
  } else {
    map.createPane('world').style.zIndex = 150; // under the tiles (200)
    fetch('/map/world.json').then((r) => r.json()).then((world) => {
      L.geoJSON(world, { pane: 'world', interactive: false, style: { color: '#c8c4bb', weight: 0.6, fillColor: land, fillOpacity: 1 } }).addTo(map);
    }).catch((err) => console.error('world outline:', err));
  }
  const highlightStyle = { color: '#d7301f', weight: 3, fillOpacity: 0.45, className: 'highlight' };
  const inViewStyle = { color: '#2b8c3e', weight: 2, dashArray: '4 3', fillOpacity: 0.08, className: 'inview' };
  const highlight = L.layerGroup().addTo(map);
  const inView = L.layerGroup().addTo(map);
  const drawn = {}; // collection id -> layer
  const hover = L.tooltip({ direction: 'top', offset: [0, -6], className: 'hover-name' });

  let token = sessionStorage.getItem('searchToken') || '';
  // api fetches JSON from the API, asking for a token when the server
  // needs one.
  async function api(url) {
    const headers = token ? { Authorization: 'Bearer ' + token } : {};
    const resp = await fetch(url, { headers });
    if (resp.status === 401) {
      document.getElementById('token-box').hidden = false;
      throw new Error('this server needs a read token');
    }
    const data = await resp.json();
    if (!resp.ok) throw new Error(data.description || resp.statusText);
    return data;
  }
  document.getElementById('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    token = document.getElementById('token').value;
    sessionStorage.setItem('searchToken', token);
    document.getElementById('token-box').hidden = true;
    loadCollections();
  });

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    Object.assign(e, attrs || {});
    for (const c of children) e.append(c);
    return e;
  }
  function showError(target, err) {
    target.replaceChildren(el('li', { className: 'error', textContent: err.message }));
  }
  function bboxParam() {
    const b = map.getBounds();
    const west = Math.max(-180, b.getWest()), east = Math.min(180, b.getEast());
    const r = (v) => Math.round(v * 1e4) / 1e4;
    return [r(west), r(Math.max(-90, b.getSouth())), r(east), r(Math.min(90, b.getNorth()))].join(',');
  }

  // TileGrid is VectorGrid's protobuf layer whose failed tile fetches (a
  // tile dropped while loading, when the view moves on) draw an empty tile
  // instead of leaving a rejected promise unhandled.
  const TileGrid = L.VectorGrid.Protobuf.extend({
    _getVectorTilePromise: function (coords, tileBounds) {
      return L.VectorGrid.Protobuf.prototype._getVectorTilePromise.call(this, coords, tileBounds).catch((err) => {
        this.fire('tilefetcherror', { coords, error: err });
        return { layers: {} };
      });
    },
  });

  // tilesOf draws collection c from its vector tiles in colour.
  function tilesOf(c, colour) {
    const style = { fill: true, fillColor: colour, fillOpacity, color: colour, weight: 0.8, opacity: 0.9, className: 'drawn' };
    const layer = new TileGrid('/collections/' + encodeURIComponent(c.id) + '/tiles/WebMercatorQuad/{z}/{y}/{x}', {
      vectorTileLayerStyles: { [c.id]: style },
      interactive: true,
      maxNativeZoom: 22,
      maxZoom: 22,
      fetchOptions: token ? { headers: { Authorization: 'Bearer ' + token } } : {},
    });
    // Names on hover; clicks go on to the map (the layer does not listen).
    layer.on('mouseover', (ev) => {
      const name = ev.layer && ev.layer.properties && ev.layer.properties.name;
      if (!name) return;
      hover.setLatLng(ev.latlng).setContent(name);
      map.openTooltip(hover);
    });
    layer.on('mouseout', () => map.closeTooltip(hover));
    return layer;
  }

  function toggleCollection(c, colour, on, status) {
    if (drawn[c.id]) { map.removeLayer(drawn[c.id]); delete drawn[c.id]; }
    if (!on) { status.textContent = ''; return; }
    const layer = tilesOf(c, colour);
    drawn[c.id] = layer;
    layer.on('loading', () => { status.textContent = ' drawing…'; });
    layer.on('load', () => { status.textContent = ' drawn'; });
    layer.on('tileerror', () => { status.textContent = ' some tiles failed'; });
    status.textContent = ' drawing…';
    layer.addTo(map);
  }

  // firstSight is how many collections are drawn when the page opens.
  const firstSight = 4;

  async function loadCollections() {
    const list = document.getElementById('collections');
    try {
      const data = await api('/collections');
      list.replaceChildren();
      for (const id of Object.keys(drawn)) { map.removeLayer(drawn[id]); delete drawn[id]; }
      data.collections.forEach((c, i) => {
        const colour = palette[i % palette.length];
        const box = el('input', { type: 'checkbox', id: 'draw-' + c.id, checked: i < firstSight });
        const status = el('span', { className: 'muted small' });
        const swatch = el('span', { className: 'swatch' });
        swatch.style.background = colour;
        box.addEventListener('change', () => toggleCollection(c, colour, box.checked, status));
        list.append(el('li', { className: 'collection' },
          box, ' ', swatch, ' ', el('label', { htmlFor: box.id, textContent: c.title && c.title !== c.id ? c.id + ' (' + c.title + ')' : c.id }), status));
        if (box.checked) toggleCollection(c, colour, true, status);
      });
      if (data.collections.length === 0) list.append(el('li', { className: 'muted', textContent: 'no collection yet: import one' }));
    } catch (err) {
      showError(list, err);
    }
  }

  function thingBlock(t) {
    const rows = Object.entries(t.properties || {}).map(([k, v]) =>
      el('tr', {}, el('td', { textContent: k }), el('td', { textContent: typeof v === 'object' ? JSON.stringify(v) : String(v) })));
    return el('div', { className: 'thing' },
      el('h3', { textContent: t.name }),
      el('div', { className: 'muted small', textContent: 'id ' + t.id + (t.key ? ' · key ' + t.key : '') + ' · ' + t.collection
        + (t.distance_m > 0 ? ' · ' + (t.distance_m / 1000).toFixed(1) + ' km away' : '') }),
      el('table', {}, ...rows));
  }

  // A click locates the point in the drawn collections, or in every
  // collection when none is drawn; with a distance, the things within it
  // too, nearest first (max_distance_m).
  map.on('click', async (ev) => {
    const lat = ev.latlng.lat, lng = L.Util.wrapNum(ev.latlng.lng, [-180, 180], true);
    const out = document.getElementById('clicked');
    delete out.dataset.located;
    out.textContent = 'locating…';
    highlight.clearLayers();
    const scope = Object.keys(drawn).sort();
    let url = '/locate?lat=' + lat.toFixed(6) + '&lng=' + lng.toFixed(6) + '&geometry=true&limit=100';
    if (scope.length > 0) url += '&collections=' + scope.map(encodeURIComponent).join(',');
    const km = parseFloat(document.getElementById('near').value);
    if (km > 0) url += '&max_distance_m=' + Math.round(km * 1000);
    out.dataset.scope = scope.join(',');
    try {
      const data = await api(url);
      out.classList.remove('muted');
      out.replaceChildren(el('div', { className: 'mono', textContent: lat.toFixed(4) + ', ' + lng.toFixed(4) }),
        el('div', { className: 'muted small', textContent: scope.length ? 'in ' + scope.join(', ') : 'in every collection' }));
      if (data.things.length === 0) out.append(el('div', { className: 'muted', textContent: 'in no thing' }));
      for (const t of data.things) {
        highlight.addLayer(L.geoJSON({ type: 'Feature', geometry: t.geometry, properties: {} }, { style: highlightStyle }));
        out.append(thingBlock(t));
      }
      out.dataset.located = data.things.map((t) => t.name).join('|');
    } catch (err) {
      out.replaceChildren(el('div', { className: 'error', textContent: err.message }));
    }
  });

  function resultList(target, features) {
    target.replaceChildren();
    if (features.length === 0) target.append(el('li', { className: 'muted', textContent: 'nothing' }));
    for (const f of features) {
      const b = el('button', { className: 'link', type: 'button', textContent: f.properties.name });
      b.addEventListener('click', () => {
        highlight.clearLayers();
        const layer = L.geoJSON(f, { style: highlightStyle });
        highlight.addLayer(layer);
        map.fitBounds(layer.getBounds());
        document.getElementById('clicked').classList.remove('muted');
        document.getElementById('clicked').replaceChildren(thingBlock({
          id: f.id, name: f.properties.name, key: f.properties.key, collection: f.properties.collection, properties: f.properties,
        }));
      });
      target.append(el('li', {}, b));
    }
  }

  document.getElementById('search-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const q = document.getElementById('search').value.trim();
    const out = document.getElementById('search-results');
    if (!q) { out.replaceChildren(); return; }
    try {
      const cols = await api('/collections');
      const found = [];
      for (const c of cols.collections) {
        const page = await api('/collections/' + encodeURIComponent(c.id) + '/items?limit=20&q=' + encodeURIComponent(q));
        found.push(...page.features);
      }
      resultList(out, found);
    } catch (err) {
      showError(out, err);
    }
  });

  // The things in the window: listed, and outlined on the map.
  document.getElementById('in-view').addEventListener('click', async () => {
    const out = document.getElementById('view-results');
    inView.clearLayers();
    try {
      const cols = await api('/collections');
      const found = [];
      for (const c of cols.collections) {
        const page = await api('/collections/' + encodeURIComponent(c.id) + '/items?limit=100&bbox=' + bboxParam());
        found.push(...page.features);
      }
      for (const f of found) inView.addLayer(L.geoJSON(f, { style: inViewStyle }));
      highlight.eachLayer((l) => l.bringToFront());
      resultList(out, found);
    } catch (err) {
      showError(out, err);
    }
  });

  function showBBox() { document.getElementById('bbox').textContent = 'bbox=' + bboxParam(); }
  map.on('moveend', showBBox);
  showBBox();
  loadCollections();
})();
