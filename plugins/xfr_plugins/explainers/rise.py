"""RISE for face verification (Petsiuk et al., BMVC 2018; paper [PDS18]).

A perturbation baseline of the paper (Sec. 2; Sec. 4, Fig. 2), with the parameters its
authors used (docs/method.md, "Perturbation baselines"):

- ``n_masks = 10000`` random masks per explained image: a ``grid x grid`` (5 x 5) binary grid,
  each cell kept with probability ``p_keep = 0.1``, upsampled bilinearly to
  ``(grid + 1) * ceil(S / grid)`` pixels and cropped at a random shift in ``[0, cell)`` (RISE's
  smooth masks); the masked image is ``image * mask`` (removed pixels black).
- Score: the dot product of the masked image's embedding with the other image's unperturbed
  embedding, i.e. the cosine similarity (xfr's embeddings are L2-normalised).
- Two maps from the same masks. With ``kept(x) = E[score | x kept]`` (RISE's
  ``sum_i score_i M_i(x) / sum_i M_i(x)``) and ``removed(x) = E[score | x removed]``, the
  contrast ``C(x) = kept(x) - removed(x)`` is RISE's saliency centred on the mean score.
  The **decrease** map ``max(C, 0)`` marks the pixels whose removal *decreases* the similarity
  (what makes the faces alike); the **increase** map ``max(-C, 0)`` the pixels whose removal
  *increases* it (what makes them differ). Each is min-max normalised.

Both faces are explained, each against the other's fixed embedding, with the same masks
(``heatmaps[0]``: probe, ``heatmaps[1]``: gallery).

Decisions: ``map="auto"`` gives the decrease map for a positive decision and, for a negative
one, the increase map (an xfr extension: it shows what would make the pair more similar, i.e.
the regions that drive the rejection). ``map="decrease"``/``"increase"`` forces one. With
``explain_negative=False`` a negative decision gets ``heatmaps=None`` and
``notes["unsupported"]`` (the authors' RISE explains positive decisions only, paper Sec. 4).

Efficiency: masks are drawn once per call from ``numpy.random.default_rng(seed)`` as tiny grids
and shifts (``n_masks x grid x grid``); full-size masks are built on the fly, one batch of
``batch_size`` images per verifier call, and the sums are accumulated, so memory does not grow
with ``n_masks`` and the result does not depend on ``batch_size``. Cost: ``2 * n_masks``
verifier calls per pair (20,000 with the defaults).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from xfr.interfaces.verifier import Verifier
from xfr_plugins.explainers.options import RISEOptions
from xfr_plugins.explainers.perturbation import (
    CountingEmbedder,
    PairContext,
    PairResult,
    PerturbationExplainer,
    Source,
    make_progress,
    minmax,
    scores,
    stream_embeddings,
)

__all__ = ["RISEExplainer", "RiseMasks"]


class RiseMasks:
    """RISE's random smooth masks, drawn as grids and shifts, built in slices on demand."""

    def __init__(self, n: int, size: int, grid: int, p_keep: float, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.size = size
        self.cell = math.ceil(size / grid)
        self.up = (grid + 1) * self.cell
        self.grids = (rng.random((n, grid, grid)) < p_keep).astype(np.float32)
        self.shifts = rng.integers(0, self.cell, size=(n, 2))

    def __len__(self) -> int:
        return self.grids.shape[0]

    def build(self, start: int, stop: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Masks ``start..stop-1`` as a ``(stop - start, S, S)`` float32 tensor in [0, 1]."""
        g = torch.from_numpy(self.grids[start:stop]).to(device)[:, None]
        up = F.interpolate(g, size=(self.up, self.up), mode="bilinear", align_corners=False)[:, 0]
        sh = torch.as_tensor(self.shifts[start:stop], device=device)
        ar = torch.arange(self.size, device=device)
        rows = (sh[:, 0, None] + ar)[:, :, None]
        cols = (sh[:, 1, None] + ar)[:, None, :]
        batch = torch.arange(up.shape[0], device=device)[:, None, None]
        return up[batch, rows, cols]


class RISEExplainer(PerturbationExplainer):
    """RISE with a similarity score, decrease and increase maps; see the module docstring."""

    name = "rise"
    #: The options, declared once (:mod:`xfr_plugins.explainers.options`).
    Options: ClassVar[type[RISEOptions]] = RISEOptions

    def _explain(
        self,
        verifier: Verifier,
        embedder: CountingEmbedder,
        pairs: list[PairContext],
        opts: dict[str, Any],
    ) -> list[PairResult]:
        size = int(pairs[0].probe.shape[-1])
        if opts["grid"] > size:
            raise ValueError(f"{self.name}: grid {opts['grid']} exceeds the image size {size}")
        n = int(opts["n_masks"])
        masks = RiseMasks(n, size, int(opts["grid"]), float(opts["p_keep"]), int(opts["seed"]))
        device = pairs[0].probe.device

        jobs = [(p, side) for p in pairs for side in (0, 1)]
        pending: dict[tuple[int, int, int], torch.Tensor] = {}

        def build(k: int, a: int, b: int) -> torch.Tensor:
            m = masks.build(a, b, device)
            pending[(k, a, b)] = m
            p, side = jobs[k]
            img = p.image(side)
            return img[None] * m.to(img.dtype)[:, None]

        sources = [Source(n, partial(build, k)) for k in range(len(jobs))]
        sum_sm = [np.zeros((size, size)) for _ in jobs]
        sum_m = [np.zeros((size, size)) for _ in jobs]
        sum_s = [0.0 for _ in jobs]
        sum_s2 = [0.0 for _ in jobs]

        bar = make_progress(opts["progress"], n * len(jobs), f"{self.name} masks")
        try:
            for k, a, b, e in stream_embeddings(embedder, sources, on_batch=bar.update):
                p, side = jobs[k]
                s = scores(e, p.target(side))
                m = pending.pop((k, a, b)).to("cpu", torch.float64).numpy()
                sum_sm[k] += np.tensordot(s, m, axes=1)
                sum_m[k] += m.sum(0)
                sum_s[k] += float(s.sum())
                sum_s2[k] += float((s * s).sum())
        finally:
            bar.close()

        results: list[PairResult] = []
        for i, p in enumerate(pairs):
            which = opts["map"]
            if which == "auto":
                which = "decrease" if p.decision == "positive" else "increase"
            maps, mean_scores = [], []
            for side in (0, 1):
                k = 2 * i + side
                kept_w, rem_w = sum_m[k], n - sum_m[k]
                ok = (kept_w > 1e-9) & (rem_w > 1e-9)
                kept = np.where(ok, sum_sm[k] / np.where(ok, kept_w, 1.0), 0.0)
                removed = np.where(ok, (sum_s[k] - sum_sm[k]) / np.where(ok, rem_w, 1.0), 0.0)
                contrast = np.where(ok, kept - removed, 0.0)
                part = np.maximum(contrast if which == "decrease" else -contrast, 0.0)
                maps.append(minmax(part))
                mean_scores.append(sum_s[k] / n)
            notes: dict[str, Any] = {
                "verifier_calls": 2 * n,
                "map": which,
                "mean_masked_score": {"probe": mean_scores[0], "gallery": mean_scores[1]},
                "heatmaps": "probe masked against the gallery's embedding, and vice versa",
                "explains": (
                    "decrease map: pixels whose removal lowers the similarity (similar regions)"
                    if which == "decrease"
                    else "increase map: pixels whose removal raises the similarity (the "
                    "regions that make the faces differ)"
                ),
            }
            if p.decision == "negative":
                notes["extension"] = "negative decisions are an xfr extension of RISE"
            results.append(PairResult(np.stack(maps).astype(np.float32), notes))
        return results
