"""The in-process server leaves the host process's logging alone."""

import io
import logging

import httpx
from fastapi import FastAPI

from mindset.serve import BackgroundServer


class ClosingHandler(logging.StreamHandler):
    """Like absl's handler: closing it closes its stream (there, sys.stderr)."""

    def close(self) -> None:
        self.stream.close()
        super().close()


def test_starting_a_background_server_closes_no_handler_of_the_host():
    stream = io.StringIO()
    handler = ClosingHandler(stream)
    logging.getLogger().addHandler(handler)
    app = FastAPI()
    app.get("/ping")(lambda: {"ok": True})
    try:
        with BackgroundServer(app) as server:
            assert httpx.get(f"{server.url}/ping").json() == {"ok": True}
        assert not stream.closed
        assert handler in logging.getLogger().handlers
    finally:
        logging.getLogger().removeHandler(handler)
