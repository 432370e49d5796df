"""CorrRISE (Lu, Xu & Ebrahimi, "Towards Visual Saliency Explanations of Face Verification",
WACV 2024, arXiv:2305.08546): random masks, each pixel scored by the correlation of its mask
values with the similarity score.

For one face, ``N`` random masks ``M_i`` (1 = pixel kept, 0 = occluded) are applied
(``image * M_i``, occluded pixels black) and each masked face is scored by the cosine
similarity ``s_i`` of its embedding with the other face's unperturbed embedding. The saliency of
pixel ``x`` is the Pearson correlation over the masks

    r(x) = corr_i(M_i(x), s_i)

A pixel whose presence goes with a higher similarity (``r > 0``) makes the faces alike: the
**similarity** map is ``max(r, 0)``; one whose presence goes with a lower similarity makes them
differ: the **dissimilarity** map is ``max(-r, 0)``. Both faces are explained, each against the
other's fixed embedding, with the same masks (``heatmaps[0]``: probe, ``heatmaps[1]``: gallery).
``Explanation.heatmaps`` is the similarity map (min-max normalised) for a positive decision and
the dissimilarity map for a negative one; ``extras["correlation"]`` keeps ``r`` itself
``(2, H, W)`` in [-1, 1]. A pixel whose mask value never varies (never occluded) gets 0.

Masks (``masks=``):

- ``"patches"`` (default): ``patches = 3`` black squares of ``patch_size = 30`` pixels per
  mask, their corners uniform over the positions that keep the square inside the face,
  ``n_masks = 500``. These are the settings of the authors' script (``Corrise.py``) as a
  public re-implementation reports them; the paper's text was not available to check them.
- ``"rise"``: RISE's smooth masks (:class:`~xfr_plugins.explainers.rise.RiseMasks`: a
  ``grid x grid`` binary grid, cells kept with probability ``p_keep``, upsampled bilinearly and
  shifted), with RISE's parameters (``grid = 5``, ``p_keep = 0.1``) unless set.

``correlation="spearman"`` correlates the ranks of the scores instead (what the same
re-implementation reports the authors' script to do); ``"pearson"`` is the default.

Masks are drawn once per call from ``numpy.random.default_rng(seed)`` as corners (or grids and
shifts) and built in slices on demand: memory does not grow with ``n_masks``, and the result
depends neither on ``batch_size`` nor on the other pairs of the call. Cost:
``2 * n_masks`` model passes per pair (1,000 with the defaults) + the two unperturbed faces.
"""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

import numpy as np
import torch

from xfr.errors import OptionError
from xfr.interfaces.verifier import Verifier
from xfr_plugins.explainers.options import CorrRISEOptions
from xfr_plugins.explainers.perturbation import (
    CountingEmbedder,
    PairContext,
    PairResult,
    Source,
    make_progress,
    minmax,
    scores,
    stream_embeddings,
)
from xfr_plugins.explainers.rise import RiseMasks
from xfr_plugins.explainers.similarity import (
    SimilarityExplainer,
    SimilarityMap,
    decision_map,
    similarity_result,
)

__all__ = ["CorrRISEExplainer", "PatchMasks", "correlation_maps"]

#: What each map shows (``notes["explains"]``).
EXPLAINS: dict[SimilarityMap, str] = {
    "similarity": "similarity map: pixels whose presence correlates with a higher similarity",
    "dissimilarity": "dissimilarity map: pixels whose presence correlates with a lower "
                     "similarity",
}
#: Masks built at a time when the correlation is accumulated (bounds memory).
SLICE = 256


class PatchMasks:
    """CorrRISE's masks: ``patches`` black ``patch_size``-pixel squares per mask, drawn as
    corners and built in slices on demand (1 kept, 0 occluded)."""

    def __init__(self, n: int, size: int, patches: int, patch_size: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.size = size
        self.patch_size = patch_size
        #: ``(n, patches, 2)`` top-left corners (row, column).
        self.corners = rng.integers(0, size - patch_size + 1, size=(n, patches, 2))

    def __len__(self) -> int:
        return self.corners.shape[0]

    def build(self, start: int, stop: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Masks ``start..stop-1`` as a ``(stop - start, S, S)`` float32 tensor of 0/1."""
        c = torch.as_tensor(self.corners[start:stop], device=device)
        ar = torch.arange(self.size, device=device)
        rows = (ar >= c[..., 0, None]) & (ar < c[..., 0, None] + self.patch_size)
        cols = (ar >= c[..., 1, None]) & (ar < c[..., 1, None] + self.patch_size)
        occluded = (rows[..., :, None] & cols[..., None, :]).any(dim=1)
        return (~occluded).to(torch.float32)


def correlation_maps(masks: Any, values: np.ndarray, size: int) -> np.ndarray:
    """Pearson correlation of each pixel's mask values with each row of ``values``
    ``(J, N)`` over the ``N`` masks: ``(J, S, S)`` in [-1, 1], 0 where either does not vary.

    Sums are accumulated in float64 over slices of :data:`SLICE` masks, always the same ones,
    so the result does not depend on how the scores were batched.
    """
    values = np.asarray(values, np.float64)
    n = values.shape[1]
    sum_m = np.zeros(size * size)
    sum_m2 = np.zeros(size * size)
    sum_vm = np.zeros((values.shape[0], size * size))
    for a in range(0, n, SLICE):
        b = min(n, a + SLICE)
        m = masks.build(a, b).to(torch.float64).reshape(b - a, -1).numpy()
        sum_m += m.sum(0)
        sum_m2 += (m * m).sum(0)
        sum_vm += values[:, a:b] @ m
    sum_v = values.sum(1, keepdims=True)
    var_v = n * (values * values).sum(1, keepdims=True) - sum_v**2
    var_m = n * sum_m2 - sum_m**2
    cov = n * sum_vm - sum_v * sum_m
    # a variance below rounding of its terms is no variation
    ok_v = var_v > 1e-12 * np.maximum(n * (values * values).sum(1, keepdims=True), 1e-300)
    ok_m = var_m > 1e-12 * np.maximum(n * sum_m2, 1e-300)
    ok = ok_v & ok_m[None]
    den = np.sqrt(np.where(ok, var_v * var_m[None], 1.0))
    r = np.where(ok, cov / den, 0.0)
    return np.clip(r, -1.0, 1.0).reshape(-1, size, size)


def _ranks(values: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return np.stack([rankdata(v) for v in values])


class CorrRISEExplainer(SimilarityExplainer):
    """CorrRISE similarity and dissimilarity maps; see the module docstring. Options:
    :class:`~xfr_plugins.explainers.options.CorrRISEOptions`."""

    name = "corrrise"
    Options: ClassVar[type[CorrRISEOptions]] = CorrRISEOptions

    def _masks(self, opts: dict[str, Any], size: int) -> Any:
        n, seed = int(opts["n_masks"]), int(opts["seed"])
        if opts["masks"] == "patches":
            if opts["patch_size"] > size:
                raise OptionError(f"{self.name}: patch_size {opts['patch_size']} exceeds the "
                                  f"image size {size}")
            return PatchMasks(n, size, int(opts["patches"]), int(opts["patch_size"]), seed)
        if opts["grid"] > size:
            raise OptionError(f"{self.name}: grid {opts['grid']} exceeds the image size {size}")
        return RiseMasks(n, size, int(opts["grid"]), float(opts["p_keep"]), seed)

    def _explain(
        self,
        verifier: Verifier,
        embedder: CountingEmbedder,
        pairs: list[PairContext],
        opts: dict[str, Any],
    ) -> list[PairResult]:
        size = int(pairs[0].probe.shape[-1])
        masks = self._masks(opts, size)
        n = len(masks)
        device = pairs[0].probe.device
        jobs = [(p, side) for p in pairs for side in (0, 1)]

        def build(k: int, a: int, b: int) -> torch.Tensor:
            p, side = jobs[k]
            img = p.image(side)
            return img[None] * masks.build(a, b, device).to(img.dtype)[:, None]

        sources = [Source(n, partial(build, k)) for k in range(len(jobs))]
        values = np.zeros((len(jobs), n))
        bar = make_progress(opts["progress"], n * len(jobs), f"{self.name} masks")
        try:
            for k, a, b, e in stream_embeddings(embedder, sources, on_batch=bar.update):
                values[k, a:b] = scores(e, jobs[k][0].target(jobs[k][1]))
        finally:
            bar.close()
        mean_scores = values.mean(1)
        if opts["correlation"] == "spearman":
            values = _ranks(values)
        r = correlation_maps(masks, values, size)

        results = []
        for i, p in enumerate(pairs):
            corr = r[2 * i : 2 * i + 2]
            part = np.maximum(corr if decision_map(p.decision) == "similarity" else -corr, 0.0)
            notes: dict[str, Any] = {
                "verifier_calls": 2 * n,
                "model_passes": 2 * n,
                "masks": (f"{n} masks of {opts['patches']} black {opts['patch_size']}-pixel "
                          "squares" if opts["masks"] == "patches" else
                          f"{n} RISE masks ({opts['grid']}x{opts['grid']} grid, p_keep "
                          f"{opts['p_keep']})"),
                "mean_masked_score": {"probe": float(mean_scores[2 * i]),
                                      "gallery": float(mean_scores[2 * i + 1])},
                "heatmaps": "probe masked against the gallery's embedding, and vice versa",
            }
            results.append(similarity_result(
                p.decision, np.stack([minmax(m) for m in part]), notes,
                {"correlation": corr.astype(np.float32)}, EXPLAINS))
        return results
