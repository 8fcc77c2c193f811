// The map page: a WebGL scatter plot (regl-scatterplot, vendored) of window.MINDSET_MAP (data.js).
// Everything runs offline from the folder; live sampling appears only when served by `mindset map --serve`.
(function () {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const D = window.MINDSET_MAP;
  const api = (window.mindsetMap = { ready: false, errors: [] });
  if (!D || !window.ReglScatterplot) {
    showMessage('The map data or the plot library is missing next to index.html.');
    return;
  }

  const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#79706e',
    '#17becf', '#bcbd22', '#8c564b', '#e377c2', '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#7f7f7f'];
  // pairs for "task + correct": a strong colour for right answers, its pale twin for wrong ones
  const PAIRS = [['#1f77b4', '#aec7e8'], ['#ff7f0e', '#ffbb78'], ['#2ca02c', '#98df8a'], ['#d62728', '#ff9896'], ['#9467bd', '#c5b0d5'],
    ['#8c564b', '#c49c94'], ['#e377c2', '#f7b6d2'], ['#7f7f7f', '#c7c7c7'], ['#bcbd22', '#dbdb8d'], ['#17becf', '#9edae5']];
  const FIXED = {
    correct: { yes: '#2ca02c', no: '#d62728' },
    change: { fixed: '#2ca02c', broken: '#d62728', 'still right': '#98df8a', 'still wrong': '#ff9896' },
  };
  const LIVE = '#000000';
  const NA = '#cccccc';

  // ---- points: columns, growing when live samples arrive -----------------------------------------------
  const xs = D.x.slice();
  const ys = D.y.slice();
  const prompt = D.prompt.slice();
  const completion = D.completion.slice();
  const labels = {};
  for (const [name, col] of Object.entries(D.labels)) {
    labels[name] = { values: col.values.slice(), counts: col.counts.slice(), codes: col.codes.slice() };
  }
  const paths = Object.assign({}, D.paths || {});
  const live = []; // indices of live points
  // past a few dozen, faint paths bury the clusters: then they show on hover (and live samples always)
  const MAX_PATHS_SHOWN = 24;
  $('show-paths').checked = Object.keys(paths).length <= MAX_PATHS_SHOWN;
  let lowered = null; // lower-cased texts for search, built on first use

  const MAX_CATEGORIES = 40; // labels with more distinct values (answers, scores, ids) are shown on hover, not as colours
  const colourModes = Object.keys(labels).filter((name) => labels[name].values.length <= MAX_CATEGORIES);
  if (labels.task && labels.correct) colourModes.unshift('task + correct');
  const select = $('colour-by');
  for (const m of colourModes) select.add(new Option(m, m));
  select.value = colourModes[0];

  $('title').textContent = D.title;
  const info = D.info || {};
  $('info').textContent = `${xs.length.toLocaleString()} points · layer ${info.layer} · ${info.method} layout · encodes ${info.encode === 'prompt' ? 'prompts' : 'prompt + completion'}`;

  const n0 = xs.length;
  const pointSize = n0 <= 500 ? 7 : n0 <= 5000 ? 5 : n0 <= 50000 ? 3 : 2;
  const canvas = $('canvas');
  const pane = $('plot');
  // The plot draws into a renderer's off-screen canvas and copies its middle onto ours. The library's own
  // renderer sizes itself to min(window, screen): on a screen smaller than the window (headless chromium's
  // is 800x600) the copy is cut to a box. Ours is sized to the pane, in CSS pixels (times the device pixel
  // ratio, inside resize), and follows it.
  const renderer = window.ReglScatterplot.createRenderer({ canvas: document.createElement('canvas') });
  let size = paneSize();
  renderer.resize(size.width, size.height);
  const scatterplot = window.ReglScatterplot.createScatterplot({
    renderer,
    canvas,
    width: size.width,
    height: size.height,
    pointSize,
    pointScaleMode: 'constant', // the same size at every zoom: fitting a narrow pane zooms out, which would shrink them to dots
    pointSizeSelected: 2,
    pointOutlineWidth: 1.5,
    backgroundColor: '#ffffff',
    pointColorHover: '#000000',
    pointColorActive: '#0b6efd',
    opacityInactiveMax: 0.5,
    lassoColor: '#0b6efd',
    annotationLineColor: [0, 0, 0, 0.35],
    annotationLineWidth: 1,
  });
  api.scatterplot = scatterplot;

  // ---- the view: the pane's size, and a camera that frames every point and path vertex ------------------
  function paneSize() {
    const r = pane.getBoundingClientRect();
    return { width: Math.max(1, Math.floor(r.width)), height: Math.max(1, Math.floor(r.height)), ratio: window.devicePixelRatio || 1 };
  }

  const MARGIN = 0.06; // of the data's extent, on each side, plus the points' own radius (below)
  function bounds() {
    // the data's bounding box in the plot's coordinates: the points, and the paths when they are shown
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    const add = (x, y) => { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); };
    for (let i = 0; i < xs.length; i++) add(xs[i], ys[i]);
    const allPaths = $('show-paths').checked;
    for (const [p, v] of Object.entries(paths)) if (allPaths || live.includes(Number(p))) for (const [x, y] of v) add(x, y);
    return { x0, y0, x1, y1 };
  }

  function fitView(options = {}) {
    // zoomToArea keeps the aspect ratio and fits whichever side of the box limits it; the box grows on every
    // side by the margin and by a point's size in data units at that zoom (so edge points are whole)
    const b = bounds();
    const w = Math.max(b.x1 - b.x0, 1e-3), h = Math.max(b.y1 - b.y0, 1e-3);
    const wide = w / h > size.width / size.height; // the box's width limits the zoom, not its height
    const extent = wide ? w : h, pixels = wide ? size.width : size.height;
    const pad = extent * MARGIN + (extent * (1 + 2 * MARGIN) * (pointSize + 2)) / pixels;
    return scatterplot.zoomToArea({ x: b.x0 - pad, y: b.y0 - pad, width: w + 2 * pad, height: h + 2 * pad }, options);
  }

  let resizing = null; // a resize waiting for its animation frame
  let settling = Promise.resolve(); // the last resize, until its view is fitted and drawn
  function resize() {
    // on a window resize, a pane resize or a device pixel ratio change (browser zoom, another screen)
    const next = paneSize();
    if (next.width === size.width && next.height === size.height && next.ratio === size.ratio) return Promise.resolve();
    size = next;
    renderer.resize(size.width, size.height);
    renderer.refresh();
    return scatterplot.set({ width: size.width, height: size.height }).then(() => fitView());
  }
  function scheduleResize() {
    if (resizing) return;
    resizing = window.requestAnimationFrame(() => { resizing = null; settling = resize(); });
  }
  if (window.ResizeObserver) new ResizeObserver(scheduleResize).observe(pane);
  window.addEventListener('resize', scheduleResize);
  function watchRatio() {
    // a media query that fires once when the ratio leaves its current value; then watch the new one
    const query = window.matchMedia && window.matchMedia(`(resolution: ${window.devicePixelRatio}dppx)`);
    if (query && query.addEventListener) query.addEventListener('change', () => { scheduleResize(); watchRatio(); }, { once: true });
  }
  watchRatio();

  // ---- colours ------------------------------------------------------------------------------------------
  function categories(mode) {
    // {names, colours, codes}: codes per point into names
    if (mode === 'task + correct') {
      const task = labels.task;
      const ok = labels.correct;
      const names = [];
      const colours = [];
      task.values.forEach((t, i) => {
        const pair = PAIRS[i % PAIRS.length];
        if (t === 'live') { names.push('live samples', ''); colours.push(LIVE, LIVE); return; }
        names.push(`${t} · right`, `${t} · wrong`);
        colours.push(pair[0], pair[1]);
      });
      const wrong = (p) => (ok.values[ok.codes[p]] === 'yes' || task.values[task.codes[p]] === 'live' ? 0 : 1);
      const codes = task.codes.map((c, p) => 2 * c + wrong(p));
      return { names, colours, codes };
    }
    const col = labels[mode];
    const fixed = FIXED[mode] || {};
    let k = 0;
    const colours = col.values.map((v) => (v === 'live' ? LIVE : v === 'n/a' ? NA : fixed[v] || PALETTE[k++ % PALETTE.length]));
    return { names: col.values, colours, codes: col.codes };
  }

  function counts(codes, size) {
    const c = new Array(size).fill(0);
    for (const v of codes) c[v] += 1;
    return c;
  }

  let current = null;
  function draw() {
    current = categories(select.value);
    scatterplot.set({ colorBy: 'valueA', pointColor: current.colours.length ? current.colours : ['#888888'] });
    const valueA = new Float32Array(current.codes);
    return scatterplot.draw({ x: Float32Array.from(xs), y: Float32Array.from(ys), valueA }, { zDataType: 'categorical' }).then(() => {
      legend();
      annotate();
    });
  }

  function legend() {
    const box = $('legend');
    box.textContent = '';
    const c = counts(current.codes, current.names.length);
    current.names.forEach((name, i) => {
      if (!c[i]) return;
      const row = document.createElement('div');
      row.innerHTML = `<span class="swatch"></span><span class="name"></span><span class="count"></span>`;
      row.querySelector('.swatch').style.background = current.colours[i];
      row.querySelector('.name').textContent = name;
      row.querySelector('.count').textContent = c[i].toLocaleString();
      row.title = 'select these points';
      row.onclick = () => selectPoints(current.codes.flatMap((v, p) => (v === i ? [p] : [])), `${select.value}: ${name}`);
      box.appendChild(row);
    });
  }

  // ---- annotations: arrows (compare), generation paths, the hovered point's path ------------------------
  let hovered = -1;
  function arrow(a, b) {
    const dx = xs[b] - xs[a], dy = ys[b] - ys[a];
    const len = Math.hypot(dx, dy);
    if (len < 1e-6) return null;
    const h = Math.min(0.02, len * 0.3), ux = dx / len, uy = dy / len;
    const left = [xs[b] - h * (ux * 0.9 - uy * 0.5), ys[b] - h * (uy * 0.9 + ux * 0.5)];
    const right = [xs[b] - h * (ux * 0.9 + uy * 0.5), ys[b] - h * (uy * 0.9 - ux * 0.5)];
    return { vertices: [[xs[a], ys[a]], [xs[b], ys[b]], left, [xs[b], ys[b]], right], lineColor: [0.2, 0.2, 0.2, 0.35], lineWidth: 1 };
  }
  function pathLines(p, strong) {
    // one line a step: the library joins a polyline's segments with miters, which at a sharp turn of a path
    // shoot out as long spikes across the map
    const v = paths[p];
    if (!v || v.length < 2) return [];
    const style = { lineColor: strong ? [0.05, 0.3, 0.9, 0.9] : [0.3, 0.3, 0.3, 0.18], lineWidth: strong ? 2 : 1 };
    return v.slice(1).map((b, i) => Object.assign({ vertices: [v[i], b] }, style));
  }
  function annotate() {
    const items = [];
    if (D.pairs && D.pairs.length && $('show-arrows').checked) {
      const shown = D.pairs.length <= 3000 ? D.pairs : D.moved.slice(0, 500).map((m) => D.pairs[m.item]);
      for (const [a, b] of shown) {
        const ar = arrow(a, b);
        if (ar) items.push(ar);
      }
    }
    const allPaths = $('show-paths').checked;
    for (const p of Object.keys(paths)) {
      const isLive = live.includes(Number(p));
      if (!allPaths && !isLive) continue;
      items.push(...pathLines(p, isLive));
    }
    if (hovered >= 0) items.push(...pathLines(hovered, true));
    scatterplot.drawAnnotations(items);
  }

  // ---- hover, details, selection ------------------------------------------------------------------------
  const tooltip = $('tooltip');
  let mouse = [0, 0];
  canvas.addEventListener('mousemove', (e) => {
    const r = canvas.getBoundingClientRect();
    mouse = [e.clientX - r.left, e.clientY - r.top];
  });

  function labelLine(p) {
    return Object.entries(labels).filter(([name]) => name !== 'answer').map(([name, col]) => `${name}: ${col.values[col.codes[p]]}`).join(' · ');
  }
  function fill(el, p, maxPrompt, maxCompletion) {
    el.textContent = '';
    const pr = document.createElement('span');
    pr.className = 'prompt';
    const text = prompt[p];
    pr.textContent = text.length > maxPrompt ? '…' + text.slice(-maxPrompt) : text;
    const co = document.createElement('span');
    co.className = 'completion';
    co.textContent = completion[p].length > maxCompletion ? completion[p].slice(0, maxCompletion) + '…' : completion[p];
    const lb = document.createElement('div');
    lb.className = 'labels';
    lb.textContent = labelLine(p) + (paths[p] ? ` · path: ${paths[p].length} steps` : '');
    el.append(pr, co, lb);
  }

  scatterplot.subscribe('pointOver', (p) => {
    hovered = p;
    fill(tooltip, p, 500, 300);
    tooltip.hidden = false;
    const plot = $('plot').getBoundingClientRect();
    const x = Math.min(mouse[0] + 14, plot.width - 430);
    tooltip.style.left = `${Math.max(4, x)}px`;
    tooltip.style.top = `${Math.min(mouse[1] + 14, plot.height - 120)}px`;
    if (paths[p]) annotate();
  });
  scatterplot.subscribe('pointOut', () => {
    const had = hovered >= 0 && paths[hovered];
    hovered = -1;
    tooltip.hidden = true;
    if (had) annotate();
  });

  function showDetail(p) {
    $('detail-box').hidden = false;
    fill($('detail'), p, 4000, 4000);
  }

  function listPoints(points, title) {
    $('selection-box').hidden = !points.length;
    $('selection-title').textContent = `${title} (${points.length.toLocaleString()})`;
    const list = $('selection');
    list.textContent = '';
    for (const p of points.slice(0, 200)) {
      const li = document.createElement('li');
      const tag = labels.task ? `[${labels.task.values[labels.task.codes[p]]}] ` : '';
      const ok = labels.correct ? (labels.correct.values[labels.correct.codes[p]] === 'yes' ? '✓ ' : labels.correct.values[labels.correct.codes[p]] === 'no' ? '✗ ' : '') : '';
      li.textContent = ok + tag + (prompt[p].slice(-90) + completion[p].slice(0, 40)).replace(/\s+/g, ' ');
      li.onclick = () => { showDetail(p); scatterplot.zoomToPoints([p], { transition: true, padding: 2 }); };
      list.appendChild(li);
    }
    if (points.length > 200) {
      const li = document.createElement('li');
      li.textContent = `… and ${(points.length - 200).toLocaleString()} more`;
      list.appendChild(li);
    }
  }

  let selecting = false;
  function selectPoints(points, title) {
    selecting = true;
    scatterplot.select(points, { preventEvent: true });
    selecting = false;
    listPoints(points, title);
  }
  scatterplot.subscribe('select', ({ points }) => {
    if (selecting) return;
    if (points.length === 1) showDetail(points[0]);
    listPoints(Array.from(points), 'Selection');
  });
  scatterplot.subscribe('deselect', () => { if (!selecting) listPoints([], 'Selection'); });

  // ---- search -------------------------------------------------------------------------------------------
  let timer = null;
  $('search').addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const q = $('search').value.trim().toLowerCase();
      if (!q) { scatterplot.deselect(); listPoints([], 'Search'); return; }
      if (!lowered || lowered.length !== xs.length) lowered = prompt.map((t, i) => (t + completion[i]).toLowerCase());
      const hits = [];
      for (let i = 0; i < lowered.length; i++) if (lowered[i].includes(q)) hits.push(i);
      selectPoints(hits, `Search “${q}”`);
    }, 150);
  });

  // ---- controls -----------------------------------------------------------------------------------------
  select.addEventListener('change', draw);
  $('show-paths').addEventListener('change', annotate);
  $('show-arrows').addEventListener('change', annotate);
  $('reset').addEventListener('click', () => fitView({ transition: true }));
  $('lasso').addEventListener('click', () => {
    const on = scatterplot.get('mouseMode') !== 'lasso';
    scatterplot.set({ mouseMode: on ? 'lasso' : 'panZoom' });
    $('lasso').classList.toggle('on', on);
  });

  if (D.pairs && D.pairs.length) {
    $('arrows-box').hidden = false;
    $('moved-box').hidden = false;
    for (const m of D.moved.slice(0, 20)) {
      const li = document.createElement('li');
      li.textContent = `${m.cosine.toFixed(3)} · ${m.change} · ${m.prompt.slice(-70).replace(/\s+/g, ' ')}`;
      li.title = `A: ${m.completion_a}\nB: ${m.completion_b}`;
      li.onclick = () => { const [a, b] = D.pairs[m.item]; selectPoints([a, b], m.key); scatterplot.zoomToPoints([a, b], { transition: true, padding: 1 }); };
      $('moved').appendChild(li);
    }
  }

  // ---- live sampling (only when served) -----------------------------------------------------------------
  function addLabelValue(p, value) {
    for (const col of Object.values(labels)) {
      let code = col.values.indexOf(value);
      if (code < 0) { col.values.push(value); col.counts.push(0); code = col.values.length - 1; }
      col.codes[p] = code;
      col.counts[code] += 1;
    }
  }
  async function sample() {
    const text = $('sample-prompt').value;
    if (!text.trim()) { $('sample-status').textContent = 'type a prompt first'; return; }
    $('sample-go').disabled = true;
    $('sample-status').textContent = 'sampling…';
    try {
      const body = { prompt: text, max_new_tokens: Number($('sample-tokens').value) || 48, temperature: Number($('sample-temp').value) || 0, chat: $('sample-chat').checked };
      const res = await fetch('api/sample', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      const out = await res.json();
      if (!res.ok) throw new Error(out.error || (out.detail && JSON.stringify(out.detail)) || res.statusText);
      const p = xs.length;
      xs.push(out.x); ys.push(out.y); prompt.push(out.prompt); completion.push(out.completion);
      addLabelValue(p, 'live');
      if (out.path && out.path.length > 1) paths[p] = out.path;
      live.push(p);
      api.liveCount = live.length;
      await draw();
      showDetail(p);
      selectPoints([p], 'Live sample');
      $('sample-status').textContent = `${out.tokens} tokens (${out.finish_reason}); the black point is the answer, the blue line its path`;
    } catch (err) {
      $('sample-status').textContent = `error: ${err.message}`;
    } finally {
      $('sample-go').disabled = false;
    }
  }
  if (location.protocol.startsWith('http')) {
    fetch('api/health').then((r) => (r.ok ? r.json() : null)).then((h) => {
      if (h && h.live) { $('sample-box').hidden = false; api.live = true; }
    }).catch(() => {});
  }
  $('sample-go').addEventListener('click', sample);

  // ---- helpers for tests and benchmarks -----------------------------------------------------------------
  api.count = () => xs.length;
  api.screenPosition = (p) => scatterplot.getScreenPosition(p);
  api.liveCount = 0;
  // where every point is on the canvas (CSS pixels from its top-left), with the canvas's size and the colour
  // categories shown in the legend: the browser tests check that each legend entry's points are on screen
  api.view = () => ({
    width: size.width,
    height: size.height,
    ratio: window.devicePixelRatio,
    canvas: [canvas.width, canvas.height],
    renderer: [renderer.canvas.width, renderer.canvas.height],
    pointSize,
    positions: xs.map((_, p) => scatterplot.getScreenPosition(p)),
    names: current.names,
    colours: current.colours,
    codes: current.codes,
  });
  api.fitView = fitView;
  // resolves once no resize is pending and the last one has been fitted and drawn
  api.settled = () => (resizing ? new Promise((r) => window.requestAnimationFrame(r)).then(api.settled) : settling);

  function showMessage(text) {
    const m = $('message');
    m.textContent = text;
    m.hidden = false;
  }

  draw().then(() => fitView()).then(() => {
    api.ready = true;
    api.readyMs = performance.now();
    document.body.dataset.ready = '1';
  }).catch((err) => { api.errors.push(String(err)); showMessage(`The plot failed to draw: ${err}`); });
})();
