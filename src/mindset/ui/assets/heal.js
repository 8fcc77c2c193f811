// The Heal view: distil the current model from the original as a background job (the recipe's distill step),
// a live loss (and valid perplexity) chart drawn by uPlot from the job's server-sent events, and cancel. The
// finished heal is one more undoable step in the history; a cancelled or failed one changes nothing.
import { useJob } from './jobs.js';

const { html, useState, useEffect, useRef, uPlot } = window.UiVendor;

// What the edits added: the layers the applied steps changed (their reports' changed_layers, where a run of
// layers reads '2-3'), else everything. insert_layers is read from its parameters: its report compares shapes
// by index, so it names the last layers, not the new blocks; the layers found before it shift down by n.
export function editedLayers(history) {
  let layers = new Set();
  for (const s of history.steps) {
    if (!s.applied) continue;
    if (s.op === 'insert_layers' && Number.isInteger(s.params.after)) {
      const { after } = s.params; const n = s.params.n || 1;
      layers = new Set([...layers].map((i) => (i > after ? i + n : i)));
      for (let i = after + 1; i <= after + n; i++) layers.add(i);
      continue;
    }
    for (const row of (s.result && s.result.changed_layers) || []) {
      const [first, last] = String(row[0]).split('-').map(Number);
      for (let i = first; i <= (Number.isNaN(last) || last === undefined ? first : last); i++) layers.add(i);
    }
  }
  return layers.size ? [...layers].sort((a, b) => a - b).map((i) => `L${i}`).join(',') : '*';
}

function LossChart({ events }) {
  const box = useRef(null);
  const plot = useRef(null);
  const points = events.filter((e) => e.type === 'progress' && e.loss !== null && e.loss !== undefined);
  const data = [points.map((e) => e.step), points.map((e) => e.loss), points.map((e) => (e.ppl === undefined ? null : e.ppl))];
  useEffect(() => {
    if (!box.current) return undefined;
    plot.current = new uPlot({
      width: 440, height: 200, scales: { x: { time: false }, ppl: {} },
      series: [{ label: 'step' }, { label: 'loss', stroke: '#dc2626', width: 2 }, { label: 'valid ppl', stroke: '#2563eb', scale: 'ppl', spanGaps: true }],
      axes: [{ label: 'step' }, { label: 'loss' }, { side: 1, scale: 'ppl', label: 'ppl', grid: { show: false } }],
    }, data, box.current);
    return () => plot.current.destroy();
  }, []);
  useEffect(() => { if (plot.current) plot.current.setData(data); }, [events.length]);
  return html`<div class="loss-chart" id="loss-chart" ref=${box}></div>`;
}

// beta: the weight of the data's cross-entropy beside the KL to the original; 0 heals towards the original only
// (with distill's default 0.5 a few steps fit the corpus and can move the model further from the original).
const FIELDS = [['steps', '20'], ['batch_size', '2'], ['seq_len', '64'], ['lr', '0.0003'], ['beta', '0'], ['warmup_steps', '2'], ['valid_every', '5']];
const REAL = ['lr', 'beta'];

export function HealPanel({ history, refresh, setError }) {
  const [values, setValues] = useState(() => ({ ...Object.fromEntries(FIELDS), trainable: editedLayers(history) }));
  const { job, events, start, cancel, state, running } = useJob(refresh, setError);
  const go = (e) => {
    e.preventDefault();
    const params = Object.fromEntries(FIELDS.map(([k]) => [k, REAL.includes(k) ? parseFloat(values[k]) : parseInt(values[k], 10)]));
    params.trainable = values.trainable.split(',').map((t) => t.trim()).filter(Boolean);
    start('heal', params);
  };
  const last = [...events].reverse().find((e) => e.type === 'progress');
  return html`<div class="heal" id="heal-panel">
    <h3>Heal: distil the current model from the original</h3>
    <p class="hint">Runs in the background; the page stays usable. The result is one more undoable step.</p>
    <form onSubmit=${go}>
      ${[...FIELDS.map(([k]) => k), 'trainable'].map((k) => html`<label class="field"><span>${k}</span>
        <input id=${'heal-' + k} value=${values[k]} onInput=${(e) => setValues({ ...values, [k]: e.target.value })} /></label>`)}
      <button type="submit" id="heal-start" disabled=${running}>${running ? 'healing…' : 'Start heal'}</button>
      <button type="button" id="heal-cancel" disabled=${!running} onClick=${cancel}>Cancel</button>
    </form>
    ${job ? html`<p id="heal-status" class=${'job-' + (state || 'running')}>job ${job.id}: <b>${state || 'running'}</b>
      ${last ? ` · step ${last.step}/${last.total} · loss ${last.loss.toFixed(4)}${last.ppl ? ` · valid ppl ${last.ppl.toFixed(2)}` : ''}` : ''}
      ${job.error ? html`<br /><span class="changed">${job.error.split('\n')[0]}</span>` : null}</p>` : null}
    ${job ? html`<${LossChart} key=${job.id} events=${events} />` : null}
  </div>`;
}
