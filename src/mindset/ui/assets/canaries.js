// Canary suite deltas in the measurement panel: the suites protected training watches, scored on the original
// and the current model (POST api/measure with canaries), accuracy and gold log-prob, and current − original.
const { html } = window.UiVendor;

export const CANARY_DOCS = 8;

export function measureCanaries(measure) {
  return measure({ perplexity: false, canaries: ['canaries'], canary_limit: CANARY_DOCS });
}

const signed = (x, digits) => (x > 0 ? '+' : x < 0 ? '−' : '') + Math.abs(x).toFixed(digits);

export function CanaryTable({ c }) {
  return html`<div class="canaries" id="canaries"><h4>canary suites (${c.limit} documents each): original → current</h4>
    <table><thead><tr><th>suite</th><th>accuracy</th><th>Δ acc</th><th>gold log-prob</th><th>Δ log-prob</th></tr></thead><tbody>
      ${c.suites.map((s) => html`<tr class="canary" data-task=${s.task}><th>${s.name}</th><td>${s.original.accuracy.toFixed(2)} → ${s.current.accuracy.toFixed(2)}</td>
        <td class=${s.delta.accuracy < 0 ? 'changed' : ''}>${signed(s.delta.accuracy, 2)}</td>
        <td>${s.original.logprob.toFixed(3)} → ${s.current.logprob.toFixed(3)}</td><td class="canary-delta">${signed(s.delta.logprob, 4)}</td></tr>`)}
      <tr><th>mean</th><td></td><td id="canary-mean-acc">${signed(c.mean_delta.accuracy, 3)}</td><td></td><td id="canary-mean-logprob">${signed(c.mean_delta.logprob, 4)}</td></tr>
    </tbody></table></div>`;
}
