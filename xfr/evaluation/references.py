"""Reference orders that every explanation method is measured against (docs/method.md,
"Fair references").

A heatmap is only informative if it does better than an order that knows nothing about the
model. Three such references, each a ``(N, 2, H, W)`` stack of probe and gallery maps:

- ``random``: two independent random maps per pair (a uniform ``grid x grid`` field upsampled
  bilinearly, so removed regions are blobs like a heatmap's, not scattered pixels).
- ``random-shared``: ONE random map per pair, drawn on both faces. The paper's heatmap is one
  map of the pair used on both faces (Sec. 3.2-3.3); removing the same region of two aligned
  faces makes them alike whatever the region is, so on negative pairs only this reference is a
  fair comparison for it.
- ``center-blob``: the same centred isotropic Gaussian for every face and pair: the "faces are
  centred" prior. Its width :data:`CENTER_BLOB_SIGMA` (pixels of a 112x112 crop) matches the
  mean spatial spread of the paper's heatmaps (see :func:`spatial_spread`).

Random maps are seeded per pair (:func:`pair_seed`), independent of batching and sharding.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

__all__ = [
    "CENTER_BLOB_SIGMA",
    "REFERENCES",
    "center_blob",
    "center_blob_maps",
    "pair_seed",
    "random_maps",
    "random_shared_maps",
    "reference_description",
    "reference_maps",
    "spatial_spread",
]

#: The reference methods, by the names ``xfr evaluate --methods`` takes.
REFERENCES: tuple[str, ...] = ("random", "random-shared", "center-blob")

#: Standard deviation (pixels, 112x112 crop) of the ``center-blob`` Gaussian: the mean spatial
#: spread (:func:`spatial_spread`) of the paper explainer's heatmaps (No-Grad ViT-LRP, metric
#: selector, similarity target) on 80 held-out LFW pairs of folds 9-10 with the shipped model,
#: 19.5 px (sd 3.4; reports/lfw/targets/targets.md).
CENTER_BLOB_SIGMA: float = 19.5


def pair_seed(seed: int, key: str, what: str) -> int:
    """A per-pair seed independent of batching and sharding."""
    return int(hashlib.sha1(f"{seed}:{key}:{what}".encode()).hexdigest()[:8], 16)


def _random_fields(keys: Sequence[str], seed: int, size: tuple[int, int], grid: int,
                   per_pair: int, what: str) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    small = np.stack([
        np.random.default_rng(pair_seed(seed, k, what)).random((per_pair, grid, grid))
        for k in keys]).astype(np.float32)
    up = F.interpolate(torch.from_numpy(small), size=size, mode="bilinear", align_corners=False)
    return up.numpy()


def random_maps(keys: Sequence[str], seed: int, size: tuple[int, int],
                grid: int = 14) -> np.ndarray:
    """``random``: per pair two independent uniform ``grid x grid`` maps upsampled bilinearly
    to ``size``; ``(N, 2, H, W)`` (probe, gallery)."""
    return _random_fields(keys, seed, size, grid, 2, "random")


def random_shared_maps(keys: Sequence[str], seed: int, size: tuple[int, int],
                       grid: int = 14) -> np.ndarray:
    """``random-shared``: per pair ONE uniform ``grid x grid`` map upsampled bilinearly, the
    same on probe and gallery; ``(N, 2, H, W)``."""
    one = _random_fields(keys, seed, size, grid, 1, "random-shared")
    return np.repeat(one, 2, axis=1)


def center_blob(size: tuple[int, int], sigma: float = CENTER_BLOB_SIGMA) -> np.ndarray:
    """A centred isotropic Gaussian ``(H, W)`` in [0, 1] (peak 1 at the image centre)."""
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    h, w = size
    y = np.arange(h, dtype=np.float64) - (h - 1) / 2
    x = np.arange(w, dtype=np.float64) - (w - 1) / 2
    g = np.exp(-(y[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma**2))
    blob: np.ndarray = (g / g.max()).astype(np.float32)
    return blob


def center_blob_maps(n: int, size: tuple[int, int],
                     sigma: float = CENTER_BLOB_SIGMA) -> np.ndarray:
    """``center-blob``: the same centred Gaussian on both faces of ``n`` pairs;
    ``(N, 2, H, W)``."""
    maps: np.ndarray = np.broadcast_to(center_blob(size, sigma), (n, 2, *size)).copy()
    return maps


def reference_maps(name: str, keys: Sequence[str], seed: int,
                   size: tuple[int, int]) -> np.ndarray:
    """The maps ``(N, 2, H, W)`` of reference ``name`` (one of :data:`REFERENCES`) for the pairs
    with keys ``keys``."""
    if name == "random":
        return random_maps(keys, seed, size)
    if name == "random-shared":
        return random_shared_maps(keys, seed, size)
    if name == "center-blob":
        return center_blob_maps(len(keys), size)
    raise ValueError(f"unknown reference {name!r}; choose one of {REFERENCES}")


def reference_description(name: str, seed: int, grid: int = 14) -> str:
    """One line saying how reference ``name``'s maps are made (for reports)."""
    if name == "random":
        return (f"two independent uniform random {grid}x{grid} maps per pair (probe, gallery), "
                f"upsampled bilinearly, seeded per pair (seed {seed})")
    if name == "random-shared":
        return (f"one uniform random {grid}x{grid} map per pair, upsampled bilinearly and used "
                f"on both faces as the paper's heatmap is, seeded per pair (seed {seed})")
    if name == "center-blob":
        return (f"the same centred Gaussian (sigma {CENTER_BLOB_SIGMA:g} px) on every face of "
                "every pair")
    raise ValueError(f"unknown reference {name!r}; choose one of {REFERENCES}")


def spatial_spread(heatmaps: np.ndarray) -> np.ndarray:
    """Spatial spread of each heatmap ``(N, H, W)``: the root mean square distance (pixels) of
    its mass from its centroid, divided by sqrt(2) so that an isotropic Gaussian of standard
    deviation ``s`` has spread ``s`` (up to truncation at the border)."""
    m = np.asarray(heatmaps, dtype=np.float64)
    if m.ndim != 3:
        raise ValueError(f"heatmaps must be (N, H, W), got {m.shape}")
    n, h, w = m.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    mass = m.clip(min=0).reshape(n, -1)
    total = mass.sum(1)
    total[total == 0] = np.nan
    cy = (mass * yy.ravel()).sum(1) / total
    cx = (mass * xx.ravel()).sum(1) / total
    var = (mass * ((yy.ravel()[None] - cy[:, None]) ** 2
                   + (xx.ravel()[None] - cx[:, None]) ** 2)).sum(1) / total
    spread: np.ndarray = np.sqrt(var / 2)
    return spread
