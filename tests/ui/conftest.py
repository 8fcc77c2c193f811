import pytest
from ui_helpers import TOKEN, client_for


@pytest.fixture
def bench(tiny_llama, tmp_path):
    from mindset.ui import Workbench

    return Workbench(tiny_llama, tmp_path / "root")


@pytest.fixture
def api(bench):
    """A TestClient of the app over a fresh tiny-llama workbench, sending the token."""
    return client_for(bench, TOKEN)


@pytest.fixture
def page(bench):
    """The URL of the workbench page, served in the background for one test."""
    from mindset.ui.browser import serving

    with serving(bench, TOKEN) as url:
        yield url
