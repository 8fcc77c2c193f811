// Background jobs from the page: start one (POST api/jobs), follow its server-sent events, cancel it.
import { api } from './api.js';

const { useState, useRef, useEffect } = window.UiVendor;
const FINISHED = ['done', 'failed', 'cancelled'];

// useJob(onFinished): {job, events, start(kind, params), cancel()}; onFinished(job) runs once the job ends.
export function useJob(onFinished, setError) {
  const [job, setJob] = useState(null);
  const [events, setEvents] = useState([]);
  const [state, setState] = useState(null);
  const source = useRef(null);
  useEffect(() => () => source.current && source.current.close(), []);
  const follow = (started) => {
    const seen = [];
    const es = new EventSource(`api/jobs/${started.id}/events`);
    source.current = es;
    const take = (e) => {
      const event = JSON.parse(e.data);
      seen.push(event);
      setEvents([...seen]);
      window.mindsetUi.job = { id: started.id, kind: started.kind, state: 'running', events: seen.length };
      if (event.type === 'state' && FINISHED.includes(event.state)) {
        es.close();
        api(`api/jobs/${started.id}`).then(async (j) => {
          setJob(j);
          if (onFinished) await onFinished(j);
          setState(j.state); window.mindsetUi.job.state = j.state;
        });
      }
    };
    es.addEventListener('progress', take);
    es.addEventListener('state', take);
  };
  const start = async (kind, params) => {
    setError(null); setEvents([]);
    try {
      const started = await api('api/jobs', { kind, params });
      setJob(started); setState('running');
      window.mindsetUi.job = { id: started.id, kind, state: 'running', events: 0 };
      follow(started);
    } catch (err) { setError(err.message); }
  };
  const cancel = async () => { if (job) await api(`api/jobs/${job.id}/cancel`, {}); };
  return { job, events, start, cancel, state, running: state === 'running' };
}
