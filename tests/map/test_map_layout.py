"""Layouts: PCA and UMAP, saved as safetensors + JSON, and new points projected by the documented rules."""

import json

import numpy as np
import pytest

from mindset.errors import MindsetError
from mindset.map.layout import Layout, choose_method, fit_layout, knn_place


def clusters(n_per=40, dims=32, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dims)) * 4
    x = np.concatenate([c + rng.normal(size=(n_per, dims)) for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(3), n_per)


def test_pca_layout_projects_known_points_exactly_after_a_save_and_load(tmp_path):
    x, _ = clusters()
    layout = fit_layout(x, "pca")
    layout.save(tmp_path)
    loaded = Layout.load(tmp_path)
    assert loaded.method == "pca"
    np.testing.assert_allclose(loaded.project(x), layout.coords, atol=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layout.json", "layout.safetensors"]
    assert json.loads((tmp_path / "layout.json").read_text())["points"] == len(x)


def test_pca_separates_clusters_and_is_deterministic():
    x, group = clusters()
    a, b = fit_layout(x, "pca").coords, fit_layout(x, "pca").coords
    np.testing.assert_array_equal(a, b)
    centres = np.stack([a[group == g].mean(0) for g in range(3)])
    spread = max(np.linalg.norm(a[group == g] - centres[g], axis=1).mean() for g in range(3))
    assert min(np.linalg.norm(centres[i] - centres[j]) for i in range(3) for j in range(i + 1, 3)) > 2 * spread


def test_knn_placement_puts_a_known_point_on_itself_and_a_new_one_among_its_neighbours():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(200, 8)).astype(np.float32)
    pos = rng.normal(size=(200, 2)).astype(np.float32)
    np.testing.assert_array_equal(knn_place(ref, pos, ref[:20]), pos[:20])
    # halfway between two reference points that are far from the rest: lands between their positions
    ref[0], ref[1] = 50, 51
    q = (ref[0:1] + ref[1:2]) / 2
    placed = knn_place(ref, pos, q, k=2)[0]
    np.testing.assert_allclose(placed, (pos[0] + pos[1]) / 2, atol=1e-5)


def test_a_umap_layout_loaded_from_disk_projects_by_nearest_neighbours(tmp_path):
    # a UMAP layout's saved arrays, built without running UMAP: projection needs only them
    x, _ = clusters()
    pca = fit_layout(x, "pca")
    layout = Layout("umap", pca.mean, pca.basis, pca.reference, np.random.default_rng(0).normal(size=(len(x), 2)).astype(np.float32), {"seed": 0})
    layout.save(tmp_path)
    again = Layout.load(tmp_path)
    np.testing.assert_allclose(again.project(x[:10]), layout.coords[:10], atol=1e-6)


@pytest.mark.slow  # numba compiles UMAP on first use: ~15 s per process
def test_umap_layout_keeps_clusters_apart_and_reprojects_known_points(tmp_path):
    x, group = clusters(n_per=60)
    layout = fit_layout(x, "umap", seed=0)
    assert layout.method == "umap" and layout.coords.shape == (180, 2)
    layout.save(tmp_path)
    np.testing.assert_allclose(Layout.load(tmp_path).project(x), layout.coords, atol=1e-5)
    c = layout.coords
    own = [np.linalg.norm(c[group == g] - c[group == g].mean(0), axis=1).mean() for g in range(3)]
    apart = min(np.linalg.norm(c[group == i].mean(0) - c[group == j].mean(0)) for i in range(3) for j in range(i + 1, 3))
    assert apart > 2 * max(own)
    np.testing.assert_array_equal(fit_layout(x, "umap", seed=0).coords, c)  # seeded: reproducible


def test_method_choice_and_bad_input():
    assert choose_method(10, "auto") == "pca" and choose_method(500, "auto") == "umap"
    with pytest.raises(MindsetError, match="unknown layout method 'tsne'"):
        choose_method(10, "tsne")
    with pytest.raises(MindsetError, match="at least 2 points"):
        fit_layout(np.zeros((1, 4), dtype=np.float32))
    with pytest.raises(MindsetError, match="not finite"):
        fit_layout(np.full((5, 4), np.nan, dtype=np.float32))
    with pytest.raises(MindsetError, match="holds no saved layout"):
        Layout.load("/nonexistent/map")
