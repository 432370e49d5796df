"""A verifier built for the evaluation tests: it looks at one region of the face only.

Its embedding is a fixed random projection of the pixels of ``region`` (rows, cols slices),
with zero-sum projection rows so that a constant image and a zeroed region both embed to the
zero vector; distance = squared L2 of the L2-normalised embeddings (the zero vector stays
zero). So the right deletion curve is known: a heatmap covering exactly the region removes all
the verifier sees once that region's fraction of pixels is gone.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


class RegionVerifier:
    name = "region-test"
    input_size = 112

    def __init__(self, region: tuple[slice, slice] = (slice(0, 56), slice(0, 56)), dim: int = 64,
                 threshold: float = 0.5, seed: int = 0) -> None:
        self.region = region
        self.threshold = threshold
        rows = region[0].stop - region[0].start
        cols = region[1].stop - region[1].start
        rng = np.random.default_rng(seed)
        proj = rng.standard_normal((3 * rows * cols, dim))
        proj -= proj.mean(axis=0, keepdims=True)  # zero-sum: constants embed to zero
        self.proj = torch.from_numpy(proj).float()
        self.calls = 0
        self.images_seen = 0
        self.fingerprint = f"region:{region}:{dim}:{seed}"

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.images_seen += images.shape[0]
        x = images[:, :, self.region[0], self.region[1]].reshape(images.shape[0], -1).float()
        return F.normalize(x @ self.proj, dim=-1)

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (F.normalize(a, dim=-1) - F.normalize(b, dim=-1)).pow(2).sum(-1)


def random_faces(n: int, seed: int) -> torch.Tensor:
    """``n`` random 112x112 RGB images with values in 0..255."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 112, 112), generator=g).float()


def region_map(region: tuple[slice, slice], inside: float = 1.0,
               outside: float = 0.0) -> np.ndarray:
    """A 112x112 heatmap: ``inside`` on the region, ``outside`` elsewhere."""
    m = np.full((112, 112), outside, dtype=np.float32)
    m[region] = inside
    return m
