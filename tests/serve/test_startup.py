"""`mindset serve` start-up: an unusable port is one line and exit 2 before anything is announced; fresh seeds."""

import socket

import httpx
import pytest

from mindset.serve.background import serve_process
from mindset.serve.net import is_loopback


def test_a_port_out_of_range_is_one_line(cli):
    code, out, err = cli("serve", "tiny-llama", "--port", "99999")
    assert code == 2 and err == "error: --port 99999: a TCP port is between 0 and 65535\n"
    assert "Traceback" not in out + err


def test_a_busy_port_is_one_line_before_serving_is_announced(cli):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = cli("serve", "tiny-llama", "--port", str(port))
    assert code == 2
    assert err.strip().splitlines() == [f"error: port {port} on 127.0.0.1 is already in use; stop what listens there or choose another --port"]


def test_the_command_serves_on_the_socket_it_checked():
    with serve_process("tiny-llama") as (url, _):
        assert httpx.get(f"{url}/health").status_code == 200


@pytest.mark.parametrize("host,loopback", [("localhost", True), ("127.0.0.1", True), ("::1", True), ("0.0.0.0", False), ("example.org", False)])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def _sample(server, **extra):
    body = {"model": "tiny-llama", "prompt": "Once upon a time", "max_tokens": 24, "temperature": 1.0, **extra}
    return httpx.post(f"{server.url}/v1/completions", json=body, timeout=60).json()["choices"][0]["text"]


def test_sampling_without_a_seed_differs_and_with_a_seed_repeats(served):
    server, _ = served
    assert _sample(server) != _sample(server)
    assert _sample(server, seed=5) == _sample(server, seed=5)
