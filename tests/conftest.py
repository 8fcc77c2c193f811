import os
import sys

import pytest

from mindset.errors import MindsetError


def pytest_collection_modifyitems(config, items):
    """`gpu` tests run wherever torch sees a CUDA device and are skipped (with the reason) everywhere else."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def mindset_home(tmp_path_factory):
    """A private MINDSET_HOME for the whole session: the GGUF cache is built fresh, once, by the tests."""
    home = tmp_path_factory.mktemp("mindset-home")
    old = os.environ.get("MINDSET_HOME")
    os.environ["MINDSET_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("MINDSET_HOME", None)
    else:
        os.environ["MINDSET_HOME"] = old


@pytest.fixture(scope="session")
def smollm2(mindset_home):
    """The real SmolLM2-135M, loaded once per session (the first load dequantizes the GGUF into the cache)."""
    from mindset.models import load

    return load("smollm2-135m", device="cpu", dtype="float32")


@pytest.fixture
def tiny_llama():
    from mindset.models import load

    return load("tiny-llama", device="cpu", dtype="float32")


@pytest.fixture
def tiny_gpt2():
    from mindset.models import load

    return load("tiny-gpt2", device="cpu", dtype="float32")


@pytest.fixture(params=["tiny-llama", "tiny-gpt2"])
def tiny(request):
    from mindset.models import load

    return load(request.param, device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def start_browser(tmp_path_factory):
    """start_browser(**start_chromium's options) -> a headless Debian chromium with a fresh profile; where chromium
    is missing, a failure that says how to install it (the browser tests never pass by skipping)."""
    from mindset.map.browser import CHROMEDRIVER, CHROMIUM, start_chromium

    def start(**kwargs):
        if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
            pytest.fail("the browser tests need Debian's chromium and chromium-driver (scripts/install-test-deps.sh installs them), "
                        "or deselect them with -m 'not browser'")
        return start_chromium(tmp_path_factory.mktemp("chromium-profile"), **kwargs)

    return start


@pytest.fixture(scope="module")
def browser(request, start_browser):
    """One chromium per test module; a module sets BROWSER_WINDOW = (width, height) for another window size."""
    window = getattr(request.module, "BROWSER_WINDOW", None)
    driver = start_browser(**({"window": window} if window else {}))
    yield driver
    driver.quit()


def run_cli(args, capsys, monkeypatch, stdin: str | None = None):
    """Run `mindset ARGS` in this process the way the console script does; returns (exit code, stdout, stderr)."""
    from mindset import cli

    monkeypatch.setattr(sys, "argv", ["mindset", *args])
    monkeypatch.setitem(cli.state, "debug", False)
    if stdin is not None:
        import io

        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = 0
    try:
        cli.main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def cli(capsys, monkeypatch):
    return lambda *args, stdin=None: run_cli(list(args), capsys, monkeypatch, stdin)


def raises_user_error(match: str):
    return pytest.raises(MindsetError, match=match)
