// The activation-norm overlay's controls: a prompt the user types, run through the current model
// (POST api/activations); each head's write ‖W_o[:, h] z_h‖ and each FFN's output norm, averaged over the
// prompt's tokens, painted by overlay.js like the other overlays. Rerun by itself after an edit.
import { api } from './api.js';

const { html, useState, useEffect } = window.UiVendor;

export const ACTIVATION_PROMPT = 'The capital of France is';

export function ActivationControls({ model, data, setData, setError }) {
  const [prompt, setPrompt] = useState((data && data.activations && data.activations.prompt) || ACTIVATION_PROMPT);
  const [running, setRunning] = useState(false);
  const run = async (text) => {
    setRunning(true); setError(null);
    try {
      const answer = await api('api/activations', { prompt: text });
      setData((d) => ({ ...(d || {}), activations: answer }));
      window.mindsetUi.activations = { prompt: answer.prompt, version: answer.version, tokens: answer.tokens.length };
    } catch (err) { setError(err.message); } finally { setRunning(false); }
  };
  const done = data && data.activations;
  useEffect(() => { if (!done || done.version !== model.version) run(done ? done.prompt : prompt); }, [model.version]);
  return html`<span class="activation-controls"><input id="activation-prompt" class="activation-prompt" value=${prompt}
      onInput=${(e) => setPrompt(e.target.value)} onKeyDown=${(e) => { if (e.key === 'Enter') run(prompt); }} />
    <button id="activation-run" class="action" disabled=${running} onClick=${() => run(prompt)}>${running ? 'running…' : 'Run prompt'}</button>
    ${done ? html`<span class="hint" id="activation-tokens">${done.tokens.length} tokens</span>` : null}</span>`;
}

export const activationLegend = (s) => ['white: writes nothing', `red: up to ${s.head.toPrecision(3)} (a head's write) / ${s.mlp.toPrecision(3)} (an FFN's output), ‖·‖ averaged over the prompt's tokens`];
