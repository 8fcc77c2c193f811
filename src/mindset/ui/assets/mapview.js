// The Map view: build the map of the current model against the original (the map package's compare) as a
// background job (POST api/jobs kind map: progress over server-sent events, cancel), then open it: the map's
// own page, served by the workbench from --root/maps behind the same token, in a frame and in a new tab.
import { api } from './api.js';
import { useJob } from './jobs.js';

const { html, useState, useEffect } = window.UiVendor;

export function MapPanel({ model, setError }) {
  const [data, setData] = useState('capitals,canaries');
  const [limit, setLimit] = useState('20');
  const [paths, setPaths] = useState('20');
  const [maps, setMaps] = useState([]);
  const [open, setOpen] = useState(null);
  const list = () => api('api/maps').then(setMaps).catch((e) => setError(e.message));
  const finished = async (j) => { await list(); if (j.state === 'done') { setOpen(j.result.url); window.mindsetUi.map = j.result; } };
  const { events, start, cancel, running, state, job } = useJob(finished, setError);
  useEffect(() => { list(); }, []);
  const progress = [...events].reverse().find((e) => e.type === 'progress');
  const build = (e) => {
    e.preventDefault();
    start('map', { data: data.split(',').map((s) => s.trim()).filter(Boolean), limit: parseInt(limit, 10), paths: parseInt(paths, 10) });
  };
  return html`<div class="mapview" id="mapview">
    <h3>Map: original → current (v${model.version})</h3>
    <p class="hint">Both models encode the same suite items; one layout holds both, each item an arrow from where the original puts it to where the current model does.</p>
    <form onSubmit=${build}>
      <label>suites <input id="map-data" value=${data} onInput=${(e) => setData(e.target.value)} /></label>
      <label>documents per task <input id="map-limit" size="4" value=${limit} onInput=${(e) => setLimit(e.target.value)} /></label>
      <label>generation paths <input id="map-paths" size="4" value=${paths} onInput=${(e) => setPaths(e.target.value)} /></label>
      <button type="submit" id="map-build" class="action" disabled=${running}>${running ? 'building…' : 'Build map'}</button>
      ${running ? html`<button type="button" id="map-cancel" class="action" onClick=${cancel}>cancel</button>` : null}
    </form>
    ${progress ? html`<p id="map-progress" class=${'job-' + (state || 'running')}><b>${state || 'running'}</b> · ${progress.step}/${progress.total} · ${progress.message}</p>` : null}
    ${state === 'failed' && job ? html`<p class="error">${job.error}</p>` : null}
    ${maps.length ? html`<table id="map-list"><tbody>${maps.map((m) => html`<tr><td><a href="#" class="map-open" onClick=${(e) => { e.preventDefault(); setOpen(m.url); }}>${m.name}</a></td>
      <td>${m.points} points</td><td>${(m.models || []).join(' → ')}</td><td>${m.built}</td><td><a href=${m.url} target="_blank" rel="noopener">new tab</a></td></tr>`)}</tbody></table>` : null}
    ${open ? html`<iframe id="map-frame" src=${open} title="map"></iframe>` : null}
  </div>`;
}
