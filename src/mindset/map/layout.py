"""2-D layout of encodings (UMAP, or PCA for tiny sets), saved without pickle, and projection of new points.

Before either method, each encoding is scaled to unit length (the last layer's states differ mostly in a
few huge dimensions; direction is what separates prompts), centred, and reduced by PCA to at most
`PCA_DIMS` dimensions (faster neighbour search, little lost). UMAP then lays out that reduced space.

Saved as `layout.safetensors` (mean, PCA basis, the reduced reference points and their 2-D positions) and
`layout.json` (method and settings): no pickled UMAP object, since mindset never unpickles files.

A map fits its layout on the items' encodings and its generation paths' states together (see
`mindset.map.build.path_states`), so every path vertex is a position the layout itself chose.

Projecting a new point (live sampling and its path):
- a PCA layout is linear, so the point gets its exact PCA coordinates;
- a UMAP layout places it at the distance-weighted mean (weights 1/d) of the 2-D positions of its k
  nearest reference points in the reduced space. This is how UMAP's own `transform` initialises new
  points before refining them; we stop there, because the refinement needs UMAP's fitted graph (only
  persistable by pickle) and is not deterministic. A point equal to a reference point lands exactly on it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mindset.errors import MindsetError

PCA_DIMS = 50
UMAP_MIN_POINTS = 64  # below this UMAP's neighbourhood graph is too thin to mean much: PCA
NEIGHBOURS = 10  # reference points averaged when placing a new point in a UMAP layout
FILES = ("layout.safetensors", "layout.json")


@dataclass
class Layout:
    method: str  # "umap" or "pca"
    mean: np.ndarray  # (D,) of the unit-length encodings
    basis: np.ndarray  # (d, D) PCA directions, rows
    reference: np.ndarray  # (N, d) the fitted points, reduced
    coords: np.ndarray  # (N, 2) their positions
    settings: dict = field(default_factory=dict)

    def reduce(self, encodings: np.ndarray) -> np.ndarray:
        x = _unit(np.asarray(encodings, dtype=np.float32)) - self.mean
        return x @ self.basis.T

    def project(self, encodings: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
        """(M, 2) positions of new encodings in this layout (see the module docstring for the rule)."""
        reduced = self.reduce(encodings)
        if self.method == "pca":
            return reduced[:, :2].astype(np.float32)
        return knn_place(self.reference, self.coords, reduced, k)

    def save(self, folder: str | Path) -> None:
        from safetensors.numpy import save_file

        from mindset.fileio import atomic_write_json

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {"mean": self.mean, "basis": self.basis, "reference": self.reference, "coords": self.coords}
        tmp = folder / ".layout.safetensors.tmp"
        save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}, str(tmp))
        tmp.replace(folder / FILES[0])
        # rows: every fitted position; points: how many of them are items (a map's generation path states follow)
        atomic_write_json(folder / FILES[1], {"method": self.method, "rows": len(self.coords), "points": len(self.coords), "dims": int(self.basis.shape[0]),
                                              **self.settings})

    @classmethod
    def load(cls, folder: str | Path) -> Layout:
        from safetensors.numpy import load_file

        folder = Path(folder)
        if not all((folder / f).exists() for f in FILES):
            raise MindsetError(f"{folder} holds no saved layout (layout.safetensors and layout.json); build the map first")
        settings = json.loads((folder / FILES[1]).read_text())
        t = load_file(str(folder / FILES[0]))
        method = settings.pop("method")
        return cls(method, t["mean"], t["basis"], t["reference"], t["coords"], settings)


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def pca_basis(x: np.ndarray, dims: int) -> np.ndarray:
    """Top principal directions of centred x (N, D), from the D x D covariance: exact, and fast for large N."""
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).double()
    cov = xt.T @ xt
    values, vectors = torch.linalg.eigh(cov)  # ascending
    top = vectors[:, torch.argsort(values, descending=True)[:dims]].T  # (d, D)
    # a sign convention, so the same data always gives the same picture
    signs = torch.sign(top[torch.arange(top.shape[0]), top.abs().argmax(dim=1)])
    return (top * signs[:, None]).float().numpy()


def choose_method(n: int, method: str) -> str:
    if method not in ("auto", "umap", "pca"):
        raise MindsetError(f"unknown layout method {method!r}; use auto, umap or pca")
    if method == "auto":
        return "umap" if n >= UMAP_MIN_POINTS else "pca"
    if method == "umap" and n < 4:
        raise MindsetError(f"UMAP needs at least 4 points to lay out; there are {n} (use --method pca)")
    return method


def fit_layout(encodings: np.ndarray, method: str = "auto", *, seed: int | None = 0, neighbours: int = 15, min_dist: float = 0.1,
               dims: int = PCA_DIMS) -> Layout:
    """Lay out (N, D) encodings in 2-D. seed=None lets UMAP use every core (not reproducible)."""
    x = np.asarray(encodings, dtype=np.float32)
    n = len(x)
    if n < 2:
        raise MindsetError(f"a map needs at least 2 points; there {'is' if n == 1 else 'are'} {n}")
    if not np.isfinite(x).all():
        raise MindsetError("some encodings are not finite (NaN or inf): the model's hidden states overflowed")
    method = choose_method(n, method)
    unit = _unit(x)
    mean = unit.mean(axis=0)
    basis = pca_basis(unit - mean, min(dims, x.shape[1], n))
    reduced = (unit - mean) @ basis.T
    started = time.perf_counter()
    settings: dict = {"seed": seed}
    if method == "pca":
        coords = reduced[:, :2] if reduced.shape[1] >= 2 else np.pad(reduced, ((0, 0), (0, 2 - reduced.shape[1])))
    else:
        import umap

        k = min(neighbours, n - 1)
        reducer = umap.UMAP(n_neighbors=k, min_dist=min_dist, n_components=2, random_state=seed, init="spectral" if n > k + 1 else "random",
                            n_jobs=1 if seed is not None else -1)
        coords = reducer.fit_transform(reduced)
        settings.update({"neighbours": k, "min_dist": min_dist, "umap_seconds": round(time.perf_counter() - started, 3)})
    return Layout(method, mean.astype(np.float32), basis, reduced.astype(np.float32), np.asarray(coords, dtype=np.float32), settings)


def knn_place(reference: np.ndarray, coords: np.ndarray, queries: np.ndarray, k: int = NEIGHBOURS, chunk: int = 2048) -> np.ndarray:
    """Distance-weighted mean (1/d) of the positions of each query's k nearest reference points (exact search)."""
    ref = torch.from_numpy(np.ascontiguousarray(reference, dtype=np.float32))
    pos = torch.from_numpy(np.ascontiguousarray(coords, dtype=np.float32))
    ref_sq = (ref * ref).sum(1)
    k = min(k, len(ref))
    out = np.zeros((len(queries), 2), dtype=np.float32)
    for start in range(0, len(queries), chunk):
        q = torch.from_numpy(np.ascontiguousarray(queries[start : start + chunk], dtype=np.float32))
        d2 = (q * q).sum(1, keepdim=True) - 2 * q @ ref.T + ref_sq  # (M, N)
        idx = torch.topk(d2, k, dim=1, largest=False).indices
        d = (ref[idx] - q[:, None, :]).norm(dim=2)  # recomputed directly: the expansion above loses digits near 0
        d, order = d.sort(dim=1)
        idx = idx.gather(1, order)
        exact = d[:, 0] < 1e-5  # the query is a reference point (up to float rounding): put it there
        w = 1.0 / d.clamp_min(1e-12)
        placed = (w[:, :, None] * pos[idx]).sum(1) / w.sum(1, keepdim=True)
        placed[exact] = pos[idx[exact, 0]]
        out[start : start + len(q)] = placed.numpy()
    return out
