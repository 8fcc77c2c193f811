"""`mindset ui`: the URL with the token, the warning off loopback, --resume, and one-line errors."""

import socket

import pytest


@pytest.fixture
def served(monkeypatch):
    """Replace uvicorn's run with a recorder: the command does everything up to serving."""
    import mindset.serve.net

    calls = []
    monkeypatch.setattr(mindset.serve.net, "run", lambda app, sock: calls.append((app, sock.getsockname()[1])))
    return calls


def test_prints_the_url_with_the_token_and_serves_the_app(cli, served, tmp_path):
    code, out, err = cli("ui", "tiny-llama", "--port", "0", "--token", "secret-1", "--root", str(tmp_path / "root"))
    assert code == 0, err
    (app, port), = served
    assert f"http://localhost:{port}/?token=secret-1" in err.replace("\n", "")
    assert app.state.token == "secret-1" and app.state.workbench.root == (tmp_path / "root").resolve()
    assert "warning" not in err


def test_a_generated_token_and_a_warning_off_loopback(cli, served, tmp_path):
    code, out, err = cli("ui", "tiny-llama", "--host", "0.0.0.0", "--port", "0", "--root", str(tmp_path))
    assert code == 0, err
    token = served[0][0].state.token
    assert len(token) >= 20 and f"?token={token}" in err.replace("\n", "")
    assert "warning" in err and "network" in err


def test_resume_replays_the_autosaved_history(cli, served, tmp_path, tiny_llama):
    from mindset.ui import Workbench

    earlier = Workbench(tiny_llama, tmp_path)
    earlier.apply("insert_layers", {"after": 0})
    code, out, err = cli("ui", "tiny-llama", "--port", "0", "--root", str(tmp_path), "--resume")
    assert code == 0, err
    assert "replayed 1 edit" in err
    assert len(served[0][0].state.workbench.current.model.model.layers) == 3


def test_resume_without_history_and_a_busy_port_are_one_line_errors(cli, served, tmp_path):
    code, out, err = cli("ui", "tiny-llama", "--port", "0", "--root", str(tmp_path), "--resume")
    assert code == 2 and "no autosaved history" in err and "Traceback" not in err
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        code, out, err = cli("ui", "tiny-llama", "--port", str(busy.getsockname()[1]), "--root", str(tmp_path))
    finally:
        busy.close()
    assert code == 2 and "already in use" in err and not served
