// The Diff view: the original against the current model, per layer (GET api/diff). Each current layer is
// shown beside the original layer it comes from; inserted, moved and dropped layers are marked as such.
import { api } from './api.js';
import { fmt } from './architecture.js';

const { html, useState, useEffect } = window.UiVendor;

const pair = ([a, b], show = (x) => x) => (a === b ? html`${show(b)}` : html`<span class="was">${a === null ? '–' : show(a)}</span> → <b>${b === null ? '–' : show(b)}</b>`);
const pct = (x) => (x === null || x === undefined ? '–' : x === 0 ? '0' : (100 * x).toPrecision(3) + '%');

function where(row) {
  if (row.status === 'dropped') return html`L${row.source} <span class="tag dropped">dropped</span>`;
  if (row.status === 'inserted') return html`<span class="tag inserted">inserted</span> copy of L${row.source}${row.init ? ` (${row.init})` : ''}`;
  if (row.status === 'duplicate') return html`<span class="tag inserted">duplicate</span> of L${row.source}`;
  if (row.status === 'moved') return html`<span class="tag moved">moved</span> from L${row.source}`;
  if (row.status === 'unknown') return html`<span class="tag">new</span>`;
  return row.source === row.index ? html`L${row.source}` : html`L${row.source} <span class="hint">(renumbered)</span>`;
}

function Row({ row }) {
  if (row.status === 'dropped') {
    return html`<tr class="diff-row status-dropped" data-status="dropped" data-source=${row.source}><td>–</td><td>${where(row)}</td>
      <td>${row.heads}</td><td>${row.kv_heads}</td><td>${row.d_ff ?? '–'}</td><td>−${fmt(row.params)}</td><td colspan="4"></td></tr>`;
  }
  const w = row.weight_change || {};
  const mods = [...row.modules_added.map((m) => html`<div class="added">+ ${m}</div>`), ...row.modules_removed.map((m) => html`<div class="removed">− ${m}</div>`)];
  const delta = row.params[0] === null ? row.params[1] : row.params[1] - row.params[0];
  return html`<tr class=${'diff-row status-' + row.status + (row.changed ? ' changed' : '')} data-status=${row.status} data-index=${row.index} data-source=${row.source ?? ''}>
    <td>L${row.index}</td><td>${where(row)}</td><td>${pair(row.heads)}</td><td>${pair(row.kv_heads)}</td><td>${pair(row.d_ff, (x) => x ?? '–')}</td>
    <td title=${row.params.map((p) => (p === null ? '–' : p.toLocaleString())).join(' → ')}>${delta === 0 ? '=' : (delta > 0 ? '+' : '−') + fmt(Math.abs(delta))}</td>
    <td class="mods">${mods.length ? mods : ''}</td><td>${pct(w.attn)}</td><td>${pct(w.mlp)}</td><td>${pct(w.total)}</td></tr>`;
}

export function DiffPanel({ model, setError }) {
  const [diff, setDiff] = useState(null);
  useEffect(() => {
    api('api/diff').then((d) => { setDiff(d); window.mindsetUi.diff = { version: d.version, rows: d.timeline.length }; }).catch((e) => setError(e.message));
  }, [model.version]);
  if (!diff) return html`<div class="diff"><p class="hint">comparing the weights of the original and the current model…</p></div>`;
  const c = diff.counts; const p = diff.params;
  const out = diff.outside;
  return html`<div class="diff" id="diff">
    <h3>Original → current</h3>
    <p class="diff-summary" id="diff-summary">${c.original} → ${c.current} layers · ${c.inserted} inserted · ${c.dropped} dropped · ${c.moved} moved · ${c.changed} changed ·
      parameters ${p.original.toLocaleString()} → ${p.current.toLocaleString()} (${p.delta >= 0 ? '+' : '−'}${Math.abs(p.delta).toLocaleString()})
      ${diff.matched_by === 'position' ? html`<br /><span class="hint">no edit record explains the layer count: layers are paired by position</span>` : null}</p>
    <table class="diff-table" id="diff-table"><thead><tr><th>current</th><th>original</th><th>heads</th><th>kv</th><th>FFN width</th><th>params</th><th>modules</th>
      <th title="‖W − W_orig‖ / ‖W_orig‖ of the attention's tensors">Δ attn</th><th title="of the FFN's tensors">Δ FFN</th><th title="of all the layer's tensors">Δ layer</th></tr></thead>
      <tbody>${diff.timeline.map((row) => html`<${Row} row=${row} />`)}</tbody></table>
    <p class="hint">Δ: relative weight change against the layer it comes from (grown tensors on their original block; an inserted layer against the block it copies).</p>
    ${diff.config.length ? html`<h4>config</h4><table><tbody>${diff.config.map((k) => html`<tr><th>${k.key}</th><td>${String(k.original)} → ${String(k.current)}</td></tr>`)}</tbody></table>` : null}
    ${out.changed.length || out.added.length || out.removed.length ? html`<h4>outside the layers</h4><ul class="outside" id="diff-outside">
      ${out.changed.map((t) => html`<li>${t.name}: ${t.relative_change === null ? `${t.shape[0].join('×')} → ${t.shape[1].join('×')}` : pct(t.relative_change)}</li>`)}
      ${out.added.map((n) => html`<li class="added">+ ${n}</li>`)}${out.removed.map((n) => html`<li class="removed">− ${n}</li>`)}</ul>` : null}
  </div>`;
}
