// The Memory view ("view the database"): the model's memory stores (fill, counters), one store's entries
// (paged, sortable: the text each was written from, hits, age, eviction score, the value's top tokens),
// search by text, and delete / memorize, which are edits (undoable, in the recipe) through api/edits.
import { api } from './api.js';

const { html, useState, useEffect } = window.UiVendor;
const PAGE = 15;

function Stores({ stores, chosen, choose }) {
  return html`<table class="stores" id="stores"><thead><tr><th>memory</th><th>kind</th><th>layer</th><th>entries</th><th>fill</th><th>queries</th><th>evictions</th></tr></thead>
    <tbody>${stores.map((s) => html`<tr class=${'store' + (chosen === s.path ? ' chosen' : '')} data-path=${s.path} onClick=${() => choose(s.path)}>
      <td>${s.path}</td><td>${s.kind}</td><td>${s.layer ?? '–'}</td><td>${s.entries.toLocaleString()} / ${s.capacity.toLocaleString()}</td>
      <td>${(100 * s.fill).toFixed(1)}%</td><td>${s.stats.queries ?? '–'}</td><td>${s.stats.evictions ?? '–'}</td></tr>`)}</tbody></table>`;
}

function value(e) {
  if (e.next_token) return html`next token <code>${JSON.stringify(e.next_token.token)}</code>`;
  return html`|v| ${e.value_norm.toFixed(2)} → ${e.top_tokens.map((t) => html`<code>${JSON.stringify(t.token)}</code> `)}`;
}

function Entries({ page, forget, busy }) {
  const store = page.kind !== 'featural';
  return html`<table class="entries" id="entries"><thead><tr><th>id</th>${store ? html`<th>written from</th><th>hits</th><th>age</th><th>score</th>` : null}<th>value</th><th></th></tr></thead>
    <tbody>${page.entries.map((e) => html`<tr class="entry" data-id=${e.id}><td>${e.id}</td>
      ${store ? html`<td class="source">${e.source || ''}</td><td>${e.hits}</td><td>${e.age}</td><td>${e.eviction_score.toFixed(3)}</td>` : null}
      <td>${value(e)}${e.similarity !== undefined ? html` <small>(sim ${e.similarity.toFixed(3)})</small>` : null}</td>
      <td>${store ? html`<button class="forget" data-id=${e.id} disabled=${busy} onClick=${() => forget(e.id)}>delete</button>` : null}</td></tr>`)}</tbody></table>`;
}

export function MemoryPanel({ model, apply, busy, setError }) {
  const [stores, setStores] = useState(null);
  const [chosen, setChosen] = useState(null);
  const [page, setPage] = useState(null);
  const [offset, setOffset] = useState(0);
  const [sort, setSort] = useState('id');
  const [query, setQuery] = useState('');
  const [found, setFound] = useState(null);
  const [text, setText] = useState('');
  const fail = (err) => setError(err.message);
  useEffect(() => {
    api('api/memory').then((m) => {
      setStores(m.stores);
      if (m.stores.length && !m.stores.some((s) => s.path === chosen)) setChosen(m.stores[0].path);
    }).catch(fail);
  }, [model.version]);
  useEffect(() => {
    if (!chosen) return;
    const q = new URLSearchParams({ offset, limit: PAGE, sort, descending: sort !== 'id' });
    api(`api/memory/${encodeURIComponent(chosen)}/entries?${q}`).then((p) => { setPage(p); window.mindsetUi.memory = { path: chosen, total: p.total, sort, ids: p.entries.map((e) => e.id) }; }).catch(fail);
  }, [chosen, offset, sort, model.version]);
  const search = async (e) => {
    e.preventDefault();
    try { setFound((await api(`api/memory/search?${new URLSearchParams({ text: query, k: 5 })}`)).stores); } catch (err) { fail(err); }
  };
  if (!stores) return html`<div class="memory" id="memory-panel"><p class="loading">reading the stores…</p></div>`;
  if (!stores.length) return html`<div class="memory" id="memory-panel"><h3>Memory</h3><p class="hint" id="no-memory">This model has no memory layers.
    In Edit, select an FFN and apply <b>ffn_to_memory</b> (kind associative: a store to browse; featural: the FFN's own slots).</p></div>`;
  const info = stores.find((s) => s.path === chosen);
  const isStore = info && info.kind !== 'featural';
  return html`<div class="memory" id="memory-panel"><h3>Memory</h3>
    <${Stores} stores=${stores} chosen=${chosen} choose=${(p) => { setChosen(p); setOffset(0); }} />
    ${isStore ? html`<form class="memorize" onSubmit=${(e) => { e.preventDefault(); apply('memorize', { text }); }}>
      <textarea id="memorize-text" rows="3" placeholder="a text to memorize into every store" value=${text} onInput=${(e) => setText(e.target.value)}></textarea>
      <button id="memorize" type="submit" disabled=${busy || !text.trim()}>Memorize</button></form>
      <form class="search" onSubmit=${search}><input id="memory-query" placeholder="search by text: the entries nearest its last token" value=${query} onInput=${(e) => setQuery(e.target.value)} />
        <button id="memory-search" type="submit">Search</button></form>` : null}
    ${found ? html`<div id="search-results">${found.map((s) => html`<h4>${s.path}: nearest to the last token</h4>
      <${Entries} page=${{ kind: s.kind, entries: s.hits }} forget=${(id) => apply('forget', { store: s.path, ids: [id] })} busy=${busy} />`)}</div>` : null}
    ${page && page.path === info.path ? html`<div class="pager">${page.total.toLocaleString()} entries · ${page.offset + 1}–${Math.min(page.total, page.offset + PAGE)}
      <button id="page-prev" disabled=${offset === 0} onClick=${() => setOffset(Math.max(0, offset - PAGE))}>‹</button>
      <button id="page-next" disabled=${offset + PAGE >= page.total} onClick=${() => setOffset(offset + PAGE)}>›</button>
      ${isStore ? html`sort <select id="memory-sort" value=${sort} onChange=${(e) => { setSort(e.target.value); setOffset(0); }}>
        ${['id', 'hits', 'age', 'score'].map((k) => html`<option value=${k}>${k}</option>`)}</select>` : html`<span class="hint">slots by value norm</span>`}</div>
      <${Entries} page=${page} forget=${(id) => apply('forget', { store: chosen, ids: [id] })} busy=${busy} />` : null}
  </div>`;
}
