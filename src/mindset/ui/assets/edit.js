// The Edit view: the edits that apply to the selection (from GET /api/ops, the EDITS table), a form for the
// chosen one prefilled from the selection, apply, then the quick measurement and the token diff.
import { CanaryTable, measureCanaries } from './canaries.js';

const { html, useState, useEffect } = window.UiVendor;

// Which edits a selection offers, and the parameters it fills in.
const FOR = {
  head: (s) => ({ remove_heads: { heads: `${s.layer}:${s.head}` }, add_heads: { layers: String(s.layer) }, head_gates: { layers: String(s.layer) } }),
  ffn: (s) => ({ widen_ffn: { layers: String(s.layer) }, narrow_ffn: { layers: String(s.layer) }, ffn_to_memory: { layers: String(s.layer) } }),
  layer: (s) => ({
    insert_layers: { after: s.layer }, add_heads: { layers: String(s.layer) }, widen_ffn: { layers: String(s.layer) }, narrow_ffn: { layers: String(s.layer) },
    duplicate_layers: { layers: String(s.layer) }, drop_layers: { layers: String(s.layer) }, move_layer: { src: s.layer }, head_gates: { layers: String(s.layer) },
    ffn_to_memory: { layers: String(s.layer) }, layerwise_feedback: {},
  }),
};

export function actionsFor(selection, ops) {
  const fill = selection ? FOR[selection.kind](selection) : Object.fromEntries(ops.map((o) => [o.op, {}]));
  return ops.filter((o) => o.op in fill).map((o) => ({ ...o, prefill: fill[o.op] }));
}

function valueOf(field, text) {
  if (text === '' || text === undefined) return undefined;
  if (field.types.length === 1 && field.types[0] === 'integer') return parseInt(text, 10);
  if (field.types.length === 1 && field.types[0] === 'number') return parseFloat(text);
  if (field.types.length === 1 && field.types[0] === 'boolean') return text === 'true';
  if (field.types.length === 1 && field.types[0] === 'array') return text.split(',').map((t) => t.trim()).filter(Boolean).map((t) => (/^-?\d+$/.test(t) ? +t : t));
  if (field.types.length === 1 && field.types[0] === 'object') return JSON.parse(text);
  return text; // layers '0-3,8', heads '3:0,1', pairs '2:10': the parameters read these strings
}

function Field({ field, value, set }) {
  const id = 'param-' + field.name;
  const input = field.enum
    ? html`<select id=${id} value=${value} onChange=${(e) => set(e.target.value)}>${field.enum.map((v) => html`<option value=${v}>${v}</option>`)}</select>`
    : html`<input id=${id} value=${value} placeholder=${field.default === null || field.default === undefined ? '' : String(field.default)}
        onInput=${(e) => set(e.target.value)} />`;
  return html`<label class="field" title=${field.description}><span>${field.name}${field.required ? ' *' : ''}</span>${input}<small>${field.description}</small></label>`;
}

function ActionForm({ action, busy, apply, preview }) {
  const initial = () => Object.fromEntries(action.params.map((f) => [f.name, action.prefill[f.name] !== undefined ? String(action.prefill[f.name]) : f.enum ? String(f.default) : '']));
  const [values, setValues] = useState(initial);
  useEffect(() => setValues(initial()), [action.op, JSON.stringify(action.prefill)]);
  const collect = () => {
    const params = {};
    for (const f of action.params) {
      const v = valueOf(f, values[f.name]);
      if (v !== undefined) params[f.name] = v;
    }
    return params;
  };
  const submit = (e) => { e.preventDefault(); apply(action.op, collect()); };
  return html`<form class="action-form" id="action-form" onSubmit=${submit}>
    <p class="summary">${action.summary}</p>
    ${action.params.map((f) => html`<${Field} field=${f} value=${values[f.name] || ''} set=${(v) => setValues({ ...values, [f.name]: v })} />`)}
    <button type="submit" id="apply" disabled=${busy}>${busy ? 'working…' : 'Apply ' + action.op}</button>
    <button type="button" id="preview" disabled=${busy} onClick=${() => preview(action.op, collect())}>Preview</button>
  </form>`;
}

function TokenDiff({ next }) {
  const row = (t) => html`<li><code>${JSON.stringify(t.token)}</code><span class="bar" style=${`width:${Math.round(100 * t.p)}px`}></span>${t.p.toFixed(3)}</li>`;
  return html`<div class="token-diff" id="token-diff"><p>next token after <code>${next.prompt}</code> (KL at the last position ${next.kl_last.toExponential(2)})</p>
    <div class="sides"><div><h4>original</h4><ol>${next.original.map(row)}</ol></div><div><h4>current</h4><ol>${next.current.map(row)}</ol></div></div></div>`;
}

export function Measurement({ m, ppl, measure, busy }) {
  const button = html`<button id="measure" onClick=${measure} disabled=${busy}>Measure perplexity</button>
    <button id="measure-canaries" onClick=${() => measureCanaries(measure)} disabled=${busy}>Canary deltas</button>`;
  if (!m) return html`<div class="measurement">${button}<p class="hint">Apply an edit to see what it did to the function.</p></div>`;
  return html`<div class="measurement" id="measurement">${button}
    <p class="kl">KL(original ‖ current) <b id="kl-value">${m.kl.mean.toExponential(2)}</b> nats/token
      ${m.kl.mean < 1e-6 ? html`<span class="same">function unchanged</span>` : html`<span class="changed">function changed</span>`}</p>
    <ul class="per-prompt">${m.kl.per_prompt.map((p) => html`<li>${p.kl.toExponential(2)} · <code>${p.prompt.slice(0, 60)}</code></li>`)}</ul>
    <${TokenDiff} next=${m.next_token} />
    ${ppl ? html`<p class="ppl" id="ppl">perplexity (${ppl.max_tokens} tokens of the valid text): original <b>${ppl.original.perplexity.toFixed(3)}</b>,
      current <b id="ppl-current">${ppl.current.perplexity.toFixed(3)}</b> (${ppl.delta >= 0 ? '+' : ''}${ppl.delta.toFixed(3)})</p>` : null}
    ${m.canaries ? html`<${CanaryTable} c=${m.canaries} />` : null}
  </div>`;
}

function Preview({ p }) {
  if (!p) return null;
  const [before, after] = p.parameters;
  const delta = after - before;
  const mib = (p.bytes_delta / 2 ** 20).toFixed(2);
  return html`<div class="preview" id="preview-result"><p><b>${p.op}</b> would change the parameters ${before.toLocaleString()} → ${after.toLocaleString()}
    (${delta >= 0 ? '+' : ''}${delta.toLocaleString()}, ${mib} MiB) and ${p.preserved ? html`<span class="same">keep the function</span>` : html`<span class="changed">change the function</span>`}
    (KL ${p.measurement.kl.mean.toExponential(2)}).</p>
    ${p.result.changed_layers && p.result.changed_layers.length ? html`<table><tbody>${p.result.changed_layers.map((r) => html`<tr><th>L${r[0]}</th><td>${r[1]}</td><td>→ ${r[2]}</td></tr>`)}</tbody></table>` : null}</div>`;
}

export function EditPanel({ ops, selection, select, busy, apply, preview, previewed }) {
  const actions = actionsFor(selection, ops);
  const [chosen, setChosen] = useState(null);
  const action = actions.find((a) => a.op === chosen) || actions[0];
  const where = !selection ? 'the whole model' : selection.kind === 'head' ? `head L${selection.layer}.H${selection.head}` : selection.kind === 'ffn' ? `the FFN of L${selection.layer}` : `layer L${selection.layer}`;
  return html`<div class="edit-panel" id="edit-panel">
    <h3>Edit ${where} ${selection ? html`<button id="whole-model" class="action" onClick=${() => select(null)}>whole model</button>` : null}</h3>
    <div class="actions" id="actions">${actions.map((a) => html`<button class=${'action' + (action && a.op === action.op ? ' chosen' : '')} data-op=${a.op}
      onClick=${() => setChosen(a.op)}>${a.op}</button>`)}</div>
    ${action ? html`<${ActionForm} action=${action} busy=${busy} apply=${apply} preview=${preview} />` : null}
    <${Preview} p=${previewed} />
  </div>`;
}
