"""Helpers shared by the ui tests."""

import colorsys
import math

import torch

TOKEN = "test-token-123"


def client_for(bench, token: str = TOKEN, auth: bool = True):
    from fastapi.testclient import TestClient

    from mindset.ui.app import create_app

    headers = {"Authorization": f"Bearer {token}"} if auth else {}
    return TestClient(create_app(bench, token=token), headers=headers)


def logits(loaded, text: str = "The capital of France is Paris, and") -> torch.Tensor:
    ids = loaded.tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return loaded.model(input_ids=ids).logits[0]


def same_tensors(a, b) -> None:
    """Equal state dicts: the same names, shapes and values (to 1e-6)."""
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sorted(sa) == sorted(sb)
    for name in sa:
        assert sa[name].shape == sb[name].shape, name
        torch.testing.assert_close(sa[name], sb[name], atol=1e-6, rtol=0, msg=name)


def expected_color(lp: float) -> tuple[int, ...]:
    """chat.js's shade(): hsl(120 p, 75%, 82%) with p = exp(log p)."""
    r, g, b = colorsys.hls_to_rgb(round(120 * math.exp(lp)) / 360, 0.82, 0.75)
    return tuple(round(255 * c) for c in (r, g, b))
