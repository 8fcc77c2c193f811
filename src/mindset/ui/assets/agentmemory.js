// The Memory view's agent database (mindset ui --agent-memory DIR): the chat agent's memories, paged and sorted
// by importance, recency or creation; the recall scores a query would give; a memory's text and importance
// edited in place; delete. Everything goes through /api/agent (mindset.agent's own API, one transaction a
// write). Without --agent-memory, api/agent answers {enabled: false} and this section is not shown.
import { api } from './api.js';

const { html, useState, useEffect } = window.UiVendor;
const PAGE = 15;
const day = (t) => new Date(t * 1000).toISOString().slice(0, 16).replace('T', ' ');

function Row({ m, busy, save, remove, scores }) {
  const [text, setText] = useState(m.text);
  const [importance, setImportance] = useState(m.importance);
  useEffect(() => { setText(m.text); setImportance(m.importance); }, [m.text, m.importance]);
  const changed = text !== m.text || +importance !== m.importance;
  return html`<tr class="agent-memory" data-id=${m.id}><td>${m.id}</td><td>${m.kind}</td>
    <td><textarea class="agent-text" rows="2" value=${text} onInput=${(e) => setText(e.target.value)}></textarea></td>
    <td><input class="agent-importance" type="number" min="1" max="10" value=${importance} onInput=${(e) => setImportance(e.target.value)} /></td>
    <td>${m.recency.toFixed(3)}</td><td><small>${day(m.created)}</small></td>
    ${scores ? html`<td class="agent-score">${m.score.toFixed(3)} <small>rel ${m.relevance.toFixed(2)} · rec ${m.recency_score.toFixed(2)} · imp ${m.importance_score.toFixed(2)} · bm25 ${m.lexical.toFixed(2)}</small></td>` : null}
    <td><button class="agent-save" data-id=${m.id} disabled=${busy || !changed || !text.trim()}
          onClick=${() => save(m.id, { ...(text !== m.text ? { text } : {}), ...(+importance !== m.importance ? { importance: +importance } : {}) })}>save</button>
      <button class="agent-delete" data-id=${m.id} disabled=${busy} onClick=${() => remove(m.id)}>delete</button></td></tr>`;
}

function Table({ rows, scores, ...actions }) {
  return html`<table class="entries agent-memories"><thead><tr><th>id</th><th>kind</th><th>text</th><th>importance</th><th>recency</th><th>created</th>
    ${scores ? html`<th>recall score</th>` : null}<th></th></tr></thead>
    <tbody>${rows.map((m) => html`<${Row} key=${m.id} m=${m} scores=${scores} ...${actions} />`)}</tbody></table>`;
}

export function AgentMemoryPanel({ setError }) {
  const [info, setInfo] = useState(undefined);
  const [page, setPage] = useState(null);
  const [offset, setOffset] = useState(0);
  const [sort, setSort] = useState('created');
  const [query, setQuery] = useState('');
  const [found, setFound] = useState(null);
  const [busy, setBusy] = useState(false);
  const [tick, setTick] = useState(0);
  const fail = (err) => setError(err.message);
  useEffect(() => { api('api/agent').then((i) => setInfo(i.enabled ? i : null)).catch(fail); }, [tick]);
  useEffect(() => {
    if (!info) return;
    const q = new URLSearchParams({ offset, limit: PAGE, sort, descending: true });
    api(`api/agent/memories?${q}`).then((p) => {
      setPage(p);
      window.mindsetUi.agentMemory = { total: p.total, sort, ids: p.memories.map((m) => m.id), texts: p.memories.map((m) => m.text) };
    }).catch(fail);
  }, [info, offset, sort, tick]);
  const recall = async (e) => {
    if (e) e.preventDefault();
    if (!query.trim()) return;
    try { setFound(await api(`api/agent/recall?${new URLSearchParams({ query, k: 5 })}`)); } catch (err) { fail(err); }
  };
  const write = async (call) => {
    setBusy(true);
    try { await call(); setTick(tick + 1); if (found) await recall(); } catch (err) { fail(err); } finally { setBusy(false); }
  };
  const save = (id, change) => write(() => api(`api/agent/memories/${id}`, change));
  const remove = (id) => write(() => api(`api/agent/memories/${id}/delete`, {}));
  if (!info) return null;
  return html`<div class="memory" id="agent-memory"><h3>Agent memory <small>${info.path} · ${info.memories} memories · ${info.messages} messages · ${info.embedder}</small></h3>
    <form class="search" onSubmit=${recall}><input id="agent-query" placeholder="recall: the memories a reply to this message would get, with their scores" value=${query} onInput=${(e) => setQuery(e.target.value)} />
      <button id="agent-recall" type="submit">Recall</button></form>
    ${found ? html`<div id="agent-recalled"><h4>recalled for “${found.query}” (recency not refreshed)</h4>
      <${Table} rows=${found.memories} scores=${true} busy=${busy} save=${save} remove=${remove} /></div>` : null}
    ${page ? html`<div class="pager">${page.total.toLocaleString()} memories · ${page.total ? page.offset + 1 : 0}–${Math.min(page.total, page.offset + PAGE)}
      <button id="agent-prev" disabled=${offset === 0} onClick=${() => setOffset(Math.max(0, offset - PAGE))}>‹</button>
      <button id="agent-next" disabled=${offset + PAGE >= page.total} onClick=${() => setOffset(offset + PAGE)}>›</button>
      sort <select id="agent-sort" value=${sort} onChange=${(e) => { setSort(e.target.value); setOffset(0); }}>
        ${['created', 'importance', 'recency'].map((k) => html`<option value=${k}>${k}</option>`)}</select></div>
      <div id="agent-page"><${Table} rows=${page.memories} scores=${false} busy=${busy} save=${save} remove=${remove} /></div>` : null}
  </div>`;
}
