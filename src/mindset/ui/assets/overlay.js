// Overlays of the Architecture view: numbers per head and per FFN painted onto their cells, with a legend.
// importance: a circuits map run as a job (drop in gold log-prob when ablated; red: needed, blue: better without);
// gates: head gate values g in (0, 2) (red: amplified, blue: closing); change: relative weight change
// ‖W − W_orig‖ / ‖W_orig‖ per attention and FFN against the original; activations: output norms on a prompt.
import { ActivationControls, activationLegend } from './activations.js';
import { api } from './api.js';
import { useJob } from './jobs.js';

const { html, useEffect } = window.UiVendor;

export const OVERLAYS = ['none', 'importance', 'gates', 'change', 'activations'];

// {heads: {"L0.H1": t}, ffn: {"L0": t}, lo, hi, label} with t in [-1, 1] for the colour, from /api/overlays.
export function overlayValues(kind, data) {
  if (!data || kind === 'none') return null;
  const heads = {}; const ffn = {}; const raw = {};
  let entries = [];
  if (kind === 'importance' && data.importance) entries = Object.entries(data.importance.scores);
  if (kind === 'gates') entries = Object.entries(data.gates).map(([k, g]) => [k, g - 1]);
  if (kind === 'change') entries = Object.entries(data.weight_change.modules || {});
  if (kind === 'activations' && data.activations) entries = Object.entries(data.activations.values);
  if (!entries.length) return { heads, ffn, raw, scale: 0, kind };
  // heads and FFNs each get their own scale: one FFN can be worth far more than any single head
  const largest = (mlp) => Math.max(1e-12, ...entries.filter(([n]) => n.endsWith('.mlp') === mlp).map(([, v]) => Math.abs(v)));
  const scales = kind === 'gates' ? { head: 1, mlp: 1 } : { head: largest(false), mlp: largest(true) };
  for (const [name, v] of entries) {
    const [layer, part] = name.split('.');
    raw[name] = kind === 'gates' ? v + 1 : v;
    if (part === 'mlp') ffn[layer] = v / scales.mlp;
    else if (part === 'attn') heads[layer] = v / scales.head; // one value for all the layer's heads
    else heads[name] = v / scales.head;
  }
  return { heads, ffn, raw, scale: scales, kind };
}

export function shade(t) {
  if (t === undefined || t === null) return '';
  const a = Math.min(1, Math.abs(t)).toFixed(3);
  return t >= 0 ? `background: rgba(220, 38, 38, ${a})` : `background: rgba(37, 99, 235, ${a})`;
}

export function headShade(overlay, layer, head) {
  if (!overlay) return null;
  const t = overlay.heads[`L${layer}.H${head}`] ?? overlay.heads[`L${layer}`];
  return t === undefined ? 'background: #e5e7eb' : shade(t);
}

const LEGEND = {
  importance: (s) => ['blue: the suite does better without it', `red: ablating it costs up to ${s.head.toPrecision(3)} (a head) / ${s.mlp.toPrecision(3)} (an FFN) nats/doc`],
  gates: () => ['blue: g → 0 (closing)', 'red: g → 2 (amplified); white: g = 1'],
  change: (s) => ['white: unchanged', `red: changed by up to ${(100 * s.head).toPrecision(3)}% (attention) / ${(100 * s.mlp).toPrecision(3)}% (FFN), relative Frobenius norm`],
  activations: activationLegend,
};

export function OverlayBar({ model, overlay, setOverlay, data, setData, setError }) {
  const load = () => api('api/overlays').then((d) => setData((old) => ({ ...(old || {}), ...d }))).catch((e) => setError(e.message));
  useEffect(() => { if (overlay !== 'none') load(); }, [overlay, model.version]);
  const { events, start, cancel, running } = useJob(load, setError);
  const values = overlayValues(overlay, data);
  useEffect(() => { window.mindsetUi.overlay = values ? { kind: overlay, values: values.raw } : null; }, [data, overlay]);
  const progress = [...events].reverse().find((e) => e.type === 'progress');
  const empty = values && !Object.keys(values.raw).length;
  return html`<div class="overlay-bar" id="overlay-bar">overlay
    ${OVERLAYS.map((k) => html`<button id=${'overlay-' + k} class=${'action' + (overlay === k ? ' chosen' : '')} onClick=${() => setOverlay(k)}>${k}</button>`)}
    ${overlay === 'importance' ? html`<button id="importance-run" class="action" disabled=${running}
        onClick=${() => start('importance', { granularity: ['head', 'mlp'], limit: 8, estimate: 'attribution' })}>
        ${running ? `mapping… ${progress ? progress.step + '/' + progress.total + ' passes' : ''}` : 'Run importance map (capitals, 8 docs)'}</button>
      ${running ? html`<button class="action" id="importance-cancel" onClick=${cancel}>cancel</button>` : null}` : null}
    ${overlay === 'activations' ? html`<${ActivationControls} model=${model} data=${data} setData=${setData} setError=${setError} />` : null}
    ${overlay === 'importance' && data && !data.importance && data.importance_stale ? html`<span class="hint">the last map was made before the latest edit; run it again</span>` : null}
    ${overlay === 'change' && data && !data.weight_change.comparable ? html`<span class="hint">${data.weight_change.reason}</span>` : null}
    ${values && !empty && LEGEND[overlay] ? html`<span class="legend" id="legend">${LEGEND[overlay](values.scale).map((t, i) => html`<span class=${'key k' + i}>${t}</span>`)}</span>` : null}
    ${empty && overlay !== 'change' && overlay !== 'activations' ? html`<span class="hint">${overlay === 'gates' ? 'no head gates in this model (Edit → head_gates adds them)' : 'no map yet for this model'}</span>` : null}
  </div>`;
}
