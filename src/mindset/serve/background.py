"""Run the server in the background — in a thread of this process, or as a `mindset serve` child process —
for notebooks, tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BackgroundServer:
    """`with BackgroundServer(app) as server: ... server.url ...` — uvicorn on loopback, stopped on exit."""

    def __init__(self, app, host: str = "127.0.0.1", port: int | None = None):
        import uvicorn

        self.host, self.port = host, port or free_port()
        # log_config=None: uvicorn's own dictConfig would close every handler the host process installed
        # (absl's closes sys.stderr with it), and this server is a guest in someone else's process
        config = uvicorn.Config(app, host=host, port=self.port, log_level="warning", log_config=None)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="mindset-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.time() + 60
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@contextlib.contextmanager
def serve_process(model: str, *options: str, start_timeout: float = 60.0):
    """`mindset serve MODEL OPTIONS...` in a child process on a free loopback port, as it is deployed: yields
    (url, process) once /health answers, and stops the process on exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: nobody drains a pipe while the server runs
    command = [sys.executable, "-m", "mindset", "serve", model, "--port", str(port), *options]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_healthy(url, process, log, start_timeout, "mindset serve")
        yield url, process
    finally:
        stop_process(process)
        log.close()


def wait_healthy(url: str, process: subprocess.Popen, log, timeout: float, name: str) -> None:
    """Return once `url`/health answers 200; raise with the end of the process's `log` (a file) if it exits or
    `timeout` seconds pass first. For any server with a /health route: mindset serve, llama-server."""
    deadline = time.time() + timeout
    while not _healthy(url):
        if process.poll() is not None or time.time() > deadline:
            log.seek(0)
            raise RuntimeError(f"{name} did not start: {log.read()[-2000:]}")
        time.sleep(0.2)


def stop_process(process: subprocess.Popen, grace: float = 30) -> None:
    """Terminate a server process and wait for it; kill it if it is still running after `grace` seconds."""
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False
