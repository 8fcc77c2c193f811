// The Architecture view: one row per layer, attention heads as cells (a shade per kv group), the FFN as a
// bar whose length is its width against the widest, custom modules (memory, gates, feedback) as badges.
import { api } from './api.js';
import { headShade, shade } from './overlay.js';

const { html, useState, useEffect } = window.UiVendor;

const BADGES = { featural_memory: 'memory', associative_memory: 'memory', knn_lm: 'kNN-LM', head_gates: 'gates', layerwise_feedback: 'feedback', embedding_shim: 'shim', embedding_shim_head: 'shim' };

export function badgeOf(module) { return BADGES[module.kind] || module.class; }

function heads(layer, selection, select, paint) {
  const perGroup = Math.max(1, layer.heads / layer.kv_heads);
  const cells = [];
  for (let h = 0; h < layer.heads; h++) {
    const group = Math.floor(h / perGroup);
    const selected = selection && selection.kind === 'head' && selection.layer === layer.index && selection.head === h;
    const value = paint ? paint.raw[`L${layer.index}.H${h}`] : undefined;
    cells.push(html`<span class=${'head g' + (group % 2) + (selected ? ' selected' : '')} style=${headShade(paint, layer.index, h) || ''}
      title=${`L${layer.index}.H${h} (kv group ${group})` + (value !== undefined ? `: ${paint.kind} ${value.toPrecision(3)}` : '')}
      data-head=${h} onClick=${(e) => { e.stopPropagation(); select({ kind: 'head', layer: layer.index, head: h }); }}></span>`);
  }
  return html`<span class="heads">${cells}</span>`;
}

function ffn(layer, maxWidth, selection, select, paint) {
  const custom = layer.modules.filter((m) => m.custom);
  const memory = custom.find((m) => /memory|knn/.test(m.kind));
  const selected = selection && selection.kind === 'ffn' && selection.layer === layer.index;
  const width = layer.d_ff ? Math.max(2, (100 * layer.d_ff) / maxWidth) : 100;
  const t = paint ? paint.ffn[`L${layer.index}`] : undefined;
  const painted = paint ? (t === undefined ? ';background:#d1d5db' : ';' + shade(t) + ';color:#111') : '';
  return html`<span class="ffn-track" onClick=${(e) => { e.stopPropagation(); select({ kind: 'ffn', layer: layer.index }); }}>
    <span class=${'ffn' + (memory ? ' memory' : '') + (selected ? ' selected' : '')} style=${`width:${width}%` + painted}
      title=${(layer.d_ff ? `FFN width ${layer.d_ff}` : memory.class) + (t !== undefined ? `: ${paint.kind} ${paint.raw[`L${layer.index}.mlp`].toPrecision(3)}` : '')}>${layer.d_ff ? layer.d_ff : badgeOf(memory)}</span></span>`;
}

export function ArchitectureRows({ model, selection, select, compact, paint }) {
  const maxWidth = model.max_d_ff || 1;
  const outside = model.custom_modules || [];
  return html`<div class=${'arch' + (compact ? ' compact' : '')} id="arch">
    <div class="arch-head"><span>layer</span><span>attention heads</span><span>feed-forward width</span><span>custom</span></div>
    ${outside.length ? html`<div class="row outside">${outside.map((m) => html`<span class="badge" title=${m.path}>${badgeOf(m)}</span>`)}</div>` : null}
    ${model.layers.map((layer) => {
      const selected = selection && selection.layer === layer.index;
      const custom = layer.modules.filter((m) => m.custom);
      return html`<div class=${'row layer' + (selected ? ' active' : '')} data-layer=${layer.index}
          onClick=${() => select({ kind: 'layer', layer: layer.index })}>
        <span class="label">L${layer.index}</span>
        ${heads(layer, selection, select, paint)}
        ${ffn(layer, maxWidth, selection, select, paint)}
        <span class="badges">${custom.map((m) => html`<span class="badge" title=${m.path}>${badgeOf(m)}</span>`)}</span>
      </div>`;
    })}
  </div>`;
}

function fmt(n) { return n >= 1e6 ? (n / 1e6).toFixed(2) + 'M' : n >= 1e3 ? (n / 1e3).toFixed(1) + 'K' : String(n); }
export { fmt };

// The module whose tensors a selection shows: the attention for a head, the FFN for an FFN bar, else the layer.
function pathOf(layer, selection) {
  const kind = selection.kind === 'head' ? 'attention' : selection.kind === 'ffn' ? 'ffn' : null;
  const found = kind && layer.modules.find((m) => m.kind === kind || (kind === 'ffn' && m.path.endsWith('.mlp')));
  return found ? found.path : layer.path;
}

function Stats({ path, version }) {
  const [stats, setStats] = useState(null);
  useEffect(() => { setStats(null); api('api/module?path=' + encodeURIComponent(path)).then(setStats).catch(() => setStats(null)); }, [path, version]);
  if (!stats) return html`<p class="hint">reading the weights of ${path}…</p>`;
  const g = (x) => (Math.abs(x) >= 1e-3 || x === 0 ? x.toFixed(4) : x.toExponential(2));
  return html`<h4>tensors of ${stats.path}</h4><table class="stats" id="stats"><thead><tr><th>tensor</th><th>shape</th><th>mean</th><th>std</th><th>max |w|</th></tr></thead>
    <tbody>${stats.tensors.map((t) => html`<tr><td>${t.name}</td><td>${t.shape.join('×')}</td><td>${g(t.mean)}</td><td>${g(t.std)}</td><td>${g(t.abs_max)}</td></tr>`)}</tbody></table>`;
}

export function Details({ model, selection }) {
  if (!selection) {
    const a = model.architecture;
    return html`<div class="details"><h3>${model.name}</h3>
      <table><tbody>
        ${[['family', a.family], ['layers', model.layers.length], ['hidden', a.hidden], ['vocab', a.vocab], ['parameters', model.params.toLocaleString()], ['dtype', model.dtype], ['device', model.device]]
          .map(([k, v]) => html`<tr><th>${k}</th><td>${v}</td></tr>`)}
        ${Object.entries(model.parameters_by_component).map(([k, v]) => html`<tr><th>${k}</th><td>${fmt(v.params)}</td></tr>`)}
      </tbody></table><p class="hint">Click a layer, a head or an FFN bar for its details.</p></div>`;
  }
  const layer = model.layers[selection.layer];
  if (!layer) return html`<div class="details"><p>layer ${selection.layer} is gone</p></div>`;
  const title = selection.kind === 'head' ? `L${layer.index}.H${selection.head}` : selection.kind === 'ffn' ? `L${layer.index}.mlp` : `L${layer.index}`;
  return html`<div class="details" id="details"><h3>${title}</h3>
    <table><tbody>
      <tr><th>heads</th><td>${layer.heads} (kv ${layer.kv_heads}, head dim ${layer.head_dim})</td></tr>
      <tr><th>FFN width</th><td>${layer.d_ff === null ? 'not an FFN mindset reads' : layer.d_ff}</td></tr>
      <tr><th>parameters</th><td>${layer.params.toLocaleString()}</td></tr>
      ${selection.kind === 'head' ? html`<tr><th>kv group</th><td>${Math.floor(selection.head / (layer.heads / layer.kv_heads))}</td></tr>` : null}
    </tbody></table>
    <h4>modules</h4>
    <table class="modules"><tbody>${layer.modules.map((m) => html`<tr class=${m.custom ? 'custom' : ''}>
      <td>${m.path}</td><td>${m.class}</td><td>${fmt(m.params)}</td></tr>`)}</tbody></table>
    <${Stats} path=${pathOf(layer, selection)} version=${model.version} /></div>`;
}
