// The Chat view: the same conversation with `original` and `current` side by side, each streamed from /v1 (serve's
// OpenAI API inside the workbench) with log-probabilities; every token is coloured by its probability, and pointing
// at one shows the five likeliest tokens there and, for models with memory, the entries it was predicted with.
import { api } from './api.js';

const { html, useState } = window.UiVendor;
const MODELS = ['original', 'current'];
const status = () => window.mindsetUi;

// p = exp(logprob) -> a background from red (unlikely) through yellow to green (likely).
export function shade(logprob) {
  const p = Math.exp(Math.max(logprob, -50));
  return `background:hsl(${Math.round(120 * p)}, 75%, 82%)`;
}

const pct = (lp) => `${(100 * Math.exp(lp)).toFixed(1)}%`;
const decodeAll = (bytes) => new TextDecoder().decode(new Uint8Array(bytes));

// The server-sent events of one streamed reply: onEntries(logprobs.content entries) per chunk; resolves at [DONE].
async function streamReply(model, messages, options, onEntries, signal) {
  const body = { model, messages, stream: true, logprobs: true, top_logprobs: 5, ...options };
  const response = await fetch('v1/chat/completions', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body), signal });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    throw new Error(`${model}: ${(data.error && (data.error.message || data.error)) || response.statusText}`);
  }
  const reader = response.body.getReader();
  const text = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += text.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split('\n')) {
        if (!line.startsWith('data: ')) continue;
        const data = line.slice(6);
        if (data === '[DONE]') return;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(`${model}: ${chunk.error.message}`);
        const choice = chunk.choices && chunk.choices[0];
        if (choice && choice.logprobs && choice.logprobs.content.length) onEntries(choice.logprobs.content);
      }
    }
  }
}

// A reply's tokens as shown: the text each adds (a token that holds part of a character shows it with the next).
function withText(entries, decoder) {
  return entries.map((e) => ({ ...e, text: decoder.decode(new Uint8Array(e.bytes), { stream: true }) }));
}

function Token({ t, pane, turn, index, hover }) {
  const mark = t.retrieved && Object.values(t.retrieved).some((list) => list.length) ? ' retrieved' : '';
  return html`<span class=${'tok' + mark} data-lp=${t.logprob.toFixed(4)} style=${shade(t.logprob)} title=${`${pct(t.logprob)}`}
    onMouseEnter=${() => hover({ pane, turn, index })}>${t.text || '\u200b'}</span>`;
}

function Pane({ name, turns, hover, version }) {
  return html`<div class="chat-pane" id=${'chat-' + name}>
    <h4>${name}${name === 'current' && version !== null ? html` <small>(model version ${version})</small>` : null}</h4>
    ${turns.map((turn, i) => html`<div class="turn"><p class="user">${turn.user}</p>
      <p class="reply" data-state=${turn.state[name]}>${turn.replies[name].map((t, j) => html`<${Token} t=${t} pane=${name} turn=${i} index=${j} hover=${hover} />`)}</p></div>`)}
  </div>`;
}

function TokenInfo({ turns, at }) {
  if (!at) return html`<div class="token-info" id="token-info"><p class="hint">Point at a token: its probability, the five likeliest tokens there, and the memory entries it was predicted with.</p></div>`;
  const t = turns[at.turn] && turns[at.turn].replies[at.pane][at.index];
  if (!t) return null;
  const stores = Object.entries(t.retrieved || {});
  return html`<div class="token-info" id="token-info" data-pane=${at.pane}>
    <p><b>${at.pane}</b> token ${at.index + 1}: <code>${JSON.stringify(decodeAll(t.bytes))}</code> p = ${pct(t.logprob)} (log p ${t.logprob.toFixed(3)})</p>
    <ol class="alternatives" id="alternatives">${t.top_logprobs.map((a) => html`<li class=${a.token === t.token ? 'chosen' : ''}>
      <code>${JSON.stringify(decodeAll(a.bytes))}</code><span class="bar" style=${`width:${Math.round(100 * Math.exp(a.logprob))}px`}></span>${pct(a.logprob)}</li>`)}</ol>
    ${stores.length ? html`<div class="retrieved" id="retrieved">${stores.map(([path, list]) => html`<p><b>${path}</b> read
      ${list.length ? list.map((e) => html`<span class="entry" data-id=${e.id} title=${e.source || ''}>#${e.id} <small>${e.score.toFixed(3)}</small> <q>${(e.source || '').slice(-40)}</q></span> `) : 'nothing (empty store)'}</p>`)}</div>` : null}
  </div>`;
}

// The conversation outlives the view: switching tabs unmounts the panel, and a reply still streaming goes on.
const saved = { turns: [], running: false, abort: null };

export function ChatPanel({ model, setError }) {
  const [turns, setShown] = useState(saved.turns);
  const setTurns = (change) => { saved.turns = typeof change === 'function' ? change(saved.turns) : change; setShown(saved.turns); };
  const [text, setText] = useState('');
  const [maxTokens, setMaxTokens] = useState(40);
  const [temperature, setTemperature] = useState(0);
  const [at, setAt] = useState(null);
  const [running, setShownRunning] = useState(saved.running);
  const setRunning = (on) => { saved.running = on; setShownRunning(on); };

  const update = (index, change) => setTurns((all) => all.map((turn, i) => (i === index ? change(turn) : turn)));
  const conversation = (name, user) => [...saved.turns.flatMap((t) => [{ role: 'user', content: t.user }, { role: 'assistant', content: t.replies[name].map((x) => x.text).join('') }]), { role: 'user', content: user }];

  const one = async (name, index, messages, signal) => {
    const decoder = new TextDecoder();
    const got = [];
    await streamReply(name, messages, { max_tokens: +maxTokens, temperature: +temperature }, (entries) => {
      const shown = withText(entries, decoder);
      got.push(...shown);
      update(index, (turn) => ({ ...turn, replies: { ...turn.replies, [name]: [...turn.replies[name], ...shown] } }));
      status().chat.tokens[name] = got.length;
    }, signal);
    update(index, (turn) => ({ ...turn, state: { ...turn.state, [name]: 'done' } }));
    if (got.length) {  // which memory entries each token was predicted with (none without memory layers)
      const found = await api('api/chat/retrieved', { model: name, messages, tokens: got.map((t) => t.bytes) });
      if (found.stores.length) {
        update(index, (turn) => ({ ...turn, replies: { ...turn.replies, [name]: turn.replies[name].map((t, j) => ({ ...t, retrieved: found.tokens[j] && found.tokens[j].entries })) } }));
      }
      if (name === 'current') status().chat.retrieved = found.stores.length ? found.tokens.length : 0;
    }
  };

  const send = async (e) => {
    e.preventDefault();
    const user = text.trim();
    if (!user || running) return;
    const index = saved.turns.length;
    const messages = Object.fromEntries(MODELS.map((m) => [m, conversation(m, user)]));
    setTurns((all) => [...all, { user, version: model.version, replies: { original: [], current: [] }, state: { original: 'streaming', current: 'streaming' } }]);
    setText(''); setRunning(true); setError(null);
    saved.abort = new AbortController();
    window.mindsetUi.chat = { state: 'streaming', tokens: { original: 0, current: 0 }, retrieved: null };
    try {
      await Promise.all(MODELS.map((m) => one(m, index, messages[m], saved.abort.signal)));
      status().chat.state = 'done';
    } catch (err) {
      status().chat.state = 'failed';
      if (err.name !== 'AbortError') setError(err.message);
    } finally { setRunning(false); }
  };

  const last = turns.length ? turns[turns.length - 1] : null;
  return html`<div class="chat" id="chat-panel">
    <form class="chat-form" onSubmit=${send}>
      <textarea id="chat-text" rows="2" placeholder="Say something to both models…" value=${text} onInput=${(e) => setText(e.target.value)}></textarea>
      <label>max tokens <input id="chat-max-tokens" type="number" min="1" max="512" value=${maxTokens} onInput=${(e) => setMaxTokens(e.target.value)} /></label>
      <label>temperature <input id="chat-temperature" type="number" min="0" max="2" step="0.1" value=${temperature} onInput=${(e) => setTemperature(e.target.value)} /></label>
      <button id="chat-send" type="submit" disabled=${running}>Send</button>
      <button id="chat-stop" type="button" disabled=${!running} onClick=${() => saved.abort && saved.abort.abort()}>Stop</button>
      <button id="chat-clear" type="button" disabled=${running || !turns.length} onClick=${() => { setTurns([]); setAt(null); }}>Clear</button>
      <span class="legend chat-legend"><span class="lo">unlikely</span><span class="mid">p ≈ 0.5</span><span class="hi">likely</span></span>
    </form>
    <div class="chat-panes">${MODELS.map((m) => html`<${Pane} name=${m} turns=${turns} hover=${setAt} version=${last ? last.version : null} />`)}</div>
    <${TokenInfo} turns=${turns} at=${at} />
  </div>`;
}
