"""A real `mindset ui` server in a background thread, for the browser tests and the benchmark."""

import threading
import time
from contextlib import contextmanager


@contextmanager
def serving(bench, token: str):
    """Yields the page's URL (with ?token=) of an app over `bench`, served by uvicorn on a free loopback port."""
    import uvicorn

    from mindset.serve.net import bind
    from mindset.ui.app import create_app

    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(bench, token=token), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/?token={token}"
    finally:
        server.should_exit = True
        thread.join(10)
