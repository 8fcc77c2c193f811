// mindset ui: the page. It is one client of the workbench API; everything it shows comes from there.
import { api, forgetTokenInUrl } from './api.js';
import { ArchitectureRows, Details, fmt } from './architecture.js';
import { ChatPanel } from './chat.js';
import { EditPanel, Measurement } from './edit.js';
import { HealPanel } from './heal.js';
import { MemoryPanel } from './memory.js';
import { AgentMemoryPanel } from './agentmemory.js';
import { OverlayBar, overlayValues } from './overlay.js';
import { DiffPanel } from './diff.js';
import { MapPanel } from './mapview.js';

const { html, render, useState, useEffect } = window.UiVendor;
const status = (window.mindsetUi = { ready: false, readyMs: null, errors: [], busy: false, version: null });
window.addEventListener('error', (e) => status.errors.push(String(e.message)));

function History({ history, undo, redo, busy }) {
  return html`<div class="history" id="history">
    <button id="undo" disabled=${busy || !history.can_undo} onClick=${undo}>Undo</button>
    <button id="redo" disabled=${busy || !history.can_redo} onClick=${redo}>Redo</button>
    <ol>${history.steps.map((s) => html`<li class=${s.applied ? 'applied' : 'undone'} title=${JSON.stringify(s.params)}>${s.op}</li>`)}</ol>
  </div>`;
}

function Export({ busy, setError }) {
  const [recipe, setRecipe] = useState(null);
  const [out, setOut] = useState('edited-model');
  const [format, setFormat] = useState('hf');
  const [saved, setSaved] = useState(null);
  const showRecipe = async () => setRecipe(await api('api/recipe'));
  const save = async () => {
    try { setSaved(await api('api/save', { out, format })); } catch (err) { setError(err.message); }
  };
  const href = recipe ? URL.createObjectURL(new Blob([recipe], { type: 'application/yaml' })) : null;
  return html`<div class="export" id="export">
    <button id="show-recipe" onClick=${showRecipe}>Export recipe</button>
    ${recipe ? html`<a id="download-recipe" href=${href} download="ui-edits.yaml">download</a><pre id="recipe">${recipe}</pre>` : null}
    <div class="save"><input id="save-out" value=${out} onInput=${(e) => setOut(e.target.value)} />
      <select id="save-format" value=${format} onChange=${(e) => setFormat(e.target.value)}><option value="hf">HF folder</option><option value="gguf">GGUF</option></select>
      <button id="save" disabled=${busy} onClick=${save}>Save</button></div>
    ${saved ? html`<p id="saved">saved ${saved.format} to ${saved.path}</p>` : null}
  </div>`;
}

function App() {
  const [model, setModel] = useState(null);
  const [history, setHistory] = useState({ steps: [], can_undo: false, can_redo: false });
  const [ops, setOps] = useState([]);
  const [view, setView] = useState('architecture');
  const [selection, setSelection] = useState(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [measurement, setMeasurement] = useState(null);
  const [ppl, setPpl] = useState(null);
  const [previewed, setPreviewed] = useState(null);
  const [overlay, setOverlay] = useState('none');
  const [overlayData, setOverlayData] = useState(null);

  useEffect(() => {
    forgetTokenInUrl();
    Promise.all([api('api/model'), api('api/history'), api('api/ops')])
      .then(([m, h, o]) => { setModel(m); setHistory(h); setOps(o); })
      .catch((err) => setError(err.message + ' (open the URL mindset ui printed, with its ?token=)'));
  }, []);
  useEffect(() => {
    if (model && !status.ready) { status.ready = true; status.readyMs = performance.now(); }
    if (model) status.version = history.version;
  }, [model, history]);

  const run = async (call) => {
    setBusy(true); status.busy = true; setError(null);
    try {
      const answer = await call();
      setModel(answer.model); setHistory(answer.history);
      if (answer.measurement) setMeasurement(answer.measurement);
      setPpl(null); setPreviewed(null);
    } catch (err) { setError(err.message); } finally { setBusy(false); status.busy = false; }
  };
  const apply = (op, params) => run(() => api('api/edits', { op, params }));
  const preview = async (op, params) => {
    setBusy(true); status.busy = true; setError(null);
    try { setPreviewed(await api('api/preview', { op, params })); } catch (err) { setError(err.message); } finally { setBusy(false); status.busy = false; }
  };
  // After a job changed the model (a heal): the new architecture, history and quick measurement.
  const refresh = async () => {
    const [m, h] = await Promise.all([api('api/model'), api('api/history')]);
    setModel(m); setHistory(h);
    try { setMeasurement(await api('api/measure', { perplexity: false })); } catch (err) { setError(err.message); }
  };
  const undo = () => run(() => api('api/undo', {}));
  const redo = () => run(() => api('api/redo', {}));
  const measure = async (extra) => { // extra: more of the request (the canary deltas), not a click event
    setBusy(true); status.busy = true;
    try { const m = await api('api/measure', { max_tokens: 256, context: 128, ...(extra && !(extra instanceof Event) ? extra : {}) }); setMeasurement(m); if (m.perplexity) setPpl(m.perplexity); }
    catch (err) { setError(err.message); } finally { setBusy(false); status.busy = false; }
  };

  if (!model) return html`<div class="page"><p class="loading">${error || "loading the model's architecture…"}</p></div>`;
  const paint = view === 'architecture' ? overlayValues(overlay, overlayData) : null;
  const arch = html`${view === 'architecture' ? html`<${OverlayBar} model=${model} overlay=${overlay} setOverlay=${setOverlay}
      data=${overlayData} setData=${setOverlayData} setError=${setError} />` : null}
    <${ArchitectureRows} model=${model} selection=${selection} select=${setSelection} compact=${view !== 'architecture'} paint=${paint} />`;
  return html`<div class="page">
    <header><h1>mindset <span id="title">${model.name}</span></h1>
      <nav>${['architecture', 'edit', 'heal', 'memory', 'chat', 'diff', 'map'].map((v) => html`<button id=${'tab-' + v} class=${view === v ? 'on' : ''} onClick=${() => setView(v)}>${v[0].toUpperCase() + v.slice(1)}</button>`)}</nav>
      <span class="totals" id="totals">${model.layers.length} layers · ${fmt(model.params)} parameters · ${model.dtype}</span>
      ${busy ? html`<span class="busy" id="busy">working…</span>` : null}</header>
    ${error ? html`<p class="error" id="error">${error}</p>` : null}
    <main class=${'view-' + view}>
      <section class="left">${arch}</section>
      <section class="right">${view === 'architecture'
        ? html`<${Details} model=${model} selection=${selection} />`
        : view === 'chat'
        ? html`<${ChatPanel} model=${model} setError=${setError} />`
        : view === 'memory'
        ? html`<${MemoryPanel} model=${model} apply=${apply} busy=${busy} setError=${setError} />
            <${AgentMemoryPanel} setError=${setError} />
            <${History} history=${history} undo=${undo} redo=${redo} busy=${busy} />`
        : view === 'diff'
        ? html`<${DiffPanel} model=${model} setError=${setError} />`
        : view === 'map'
        ? html`<${MapPanel} model=${model} setError=${setError} />`
        : view === 'heal'
        ? html`<${HealPanel} history=${history} refresh=${refresh} setError=${setError} />
            <${History} history=${history} undo=${undo} redo=${redo} busy=${busy} />
            <${Measurement} m=${measurement} ppl=${ppl} measure=${measure} busy=${busy} />`
        : html`<${History} history=${history} undo=${undo} redo=${redo} busy=${busy} />
            <${Measurement} m=${measurement} ppl=${ppl} measure=${measure} busy=${busy} />
            <${EditPanel} ops=${ops} selection=${selection} select=${setSelection} busy=${busy} apply=${apply} preview=${preview} previewed=${previewed} />
            <${Export} busy=${busy} setError=${setError} />`}</section>
    </main></div>`;
}

const root = document.getElementById('app');
root.textContent = '';
render(html`<${App} />`, root);
