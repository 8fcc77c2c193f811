// The page's one way to the server: JSON over the workbench API (the cookie set by ?token= carries the token).
export async function api(path, body) {
  const options = body === undefined ? {} : { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) };
  const response = await fetch(path, options);
  const type = response.headers.get('content-type') || '';
  const data = type.includes('json') ? await response.json() : await response.text();
  if (!response.ok) throw new Error((data && data.error) || (data && data.detail && JSON.stringify(data.detail)) || response.statusText);
  return data;
}

// Drop ?token= from the address bar once the cookie holds it, so it is not left in history or screenshots.
export function forgetTokenInUrl() {
  const url = new URL(window.location.href);
  if (url.searchParams.has('token')) {
    url.searchParams.delete('token');
    window.history.replaceState(null, '', url.pathname + url.search + url.hash);
  }
}
