"""LIME for face verification (Ribeiro et al., KDD 2016; paper [RSG16]).

A perturbation baseline of the paper (Sec. 2; Sec. 4, Fig. 2), as its authors ran it
(docs/method.md, "Perturbation baselines"):

- Superpixels: ``skimage.segmentation.quickshift`` of the explained face (RGB uint8,
  ``kernel_size=3, max_dist=200, ratio=0.2``), ``m`` segments.
- ``n_samples = 500`` perturbations ``z`` in ``{0, 1}^m``, each superpixel kept with
  ``p_keep = 0.5``; the perturbed face keeps the pixels of the kept superpixels, the others are
  black.
- Score: the dot product of the perturbed face's embedding with the other face's unperturbed
  embedding, i.e. the cosine similarity (xfr's embeddings are L2-normalised).
- Weights ``sqrt(exp(-d^2 / w^2))`` with ``d`` the cosine distance between ``z`` and the
  all-ones vector and ``w = kernel_width = 0.25`` (sklearn's convention: an all-zero ``z`` is at
  distance 1).
- A weighted least-squares linear model ``score ~ b + z . c`` (what sklearn's
  ``LinearRegression(sample_weight=...)`` solves; here with ``numpy.linalg.lstsq``).
- The ``top_k = 16`` superpixels with the largest coefficients form the explanation. The
  heatmap gives each of them its coefficient (the rest 0), divided by the largest, so the
  ranking inside the top 16 survives (deletion curves need an order; the authors drew the
  binary mask of the same 16).

Both faces are explained, each against the other's fixed embedding (``heatmaps[0]``: probe,
``heatmaps[1]``: gallery), each with its own superpixels and its own random perturbations
(``default_rng([seed, side])``).

Negative decisions (an xfr extension; the authors explain positive decisions only, paper
Sec. 4): the linear surrogate also says which superpixels *lower* the similarity; the map of a
negative decision shows the ``top_k`` superpixels with the most negative coefficients (the
regions that make the faces differ). With ``explain_negative=False`` a negative decision gets
``heatmaps=None`` and ``notes["unsupported"]``.

Cost: ``2 * n_samples`` verifier calls per pair (1000 with the defaults), ``batch_size`` images
per call.
"""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

import numpy as np
import torch

from xfr.interfaces.verifier import Verifier
from xfr_plugins.explainers.options import LIMEOptions
from xfr_plugins.explainers.perturbation import (
    CountingEmbedder,
    PairContext,
    PairResult,
    PerturbationExplainer,
    Source,
    make_progress,
    scores,
    stream_embeddings,
)

__all__ = ["LIMEExplainer", "fit_weighted_linear", "superpixels"]


def superpixels(image: torch.Tensor, kernel_size: float, max_dist: float, ratio: float,
                seed: int) -> np.ndarray:
    """Quickshift segments ``(S, S)`` int64 labels ``0..m-1`` of a ``(3, S, S)`` 0..255 face."""
    from skimage.segmentation import quickshift

    rgb = image.detach().to("cpu", torch.float32).clamp(0, 255).round().to(torch.uint8)
    labels = quickshift(
        rgb.permute(1, 2, 0).numpy(),
        kernel_size=kernel_size,
        max_dist=max_dist,
        ratio=ratio,
        rng=seed,
    )
    _, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(labels.shape).astype(np.int64)


def fit_weighted_linear(z: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    """Coefficients and intercept minimising ``sum_i w_i (y_i - b - z_i . c)^2``.

    The minimum-norm solution (``lstsq``) when the design is rank-deficient.
    """
    x = np.hstack([z.astype(np.float64), np.ones((z.shape[0], 1))])
    sw = np.sqrt(w)[:, None]
    sol, *_ = np.linalg.lstsq(x * sw, y * sw[:, 0], rcond=None)
    return sol[:-1], float(sol[-1])


class LIMEExplainer(PerturbationExplainer):
    """LIME with quickshift superpixels and a similarity score; see the module docstring."""

    name = "lime"
    #: The options, declared once (:mod:`xfr_plugins.explainers.options`).
    Options: ClassVar[type[LIMEOptions]] = LIMEOptions

    def _explain(
        self,
        verifier: Verifier,
        embedder: CountingEmbedder,
        pairs: list[PairContext],
        opts: dict[str, Any],
    ) -> list[PairResult]:
        n = int(opts["n_samples"])
        jobs = []
        for p in pairs:
            for side in (0, 1):
                img = p.image(side)
                seg = superpixels(
                    img, opts["kernel_size"], opts["max_dist"], opts["ratio"], int(opts["seed"])
                )
                m = int(seg.max()) + 1
                rng = np.random.default_rng([int(opts["seed"]), side])
                z = rng.binomial(1, float(opts["p_keep"]), size=(n, m)).astype(np.int8)
                jobs.append((p, side, seg, z))

        def build(k: int, a: int, b: int) -> torch.Tensor:
            p, side, seg, z = jobs[k]
            img = p.image(side)
            keep = torch.as_tensor(z[a:b][:, seg], dtype=img.dtype, device=img.device)
            return img[None] * keep[:, None]

        sources = [Source(n, partial(build, k)) for k in range(len(jobs))]
        ys = [np.empty(n) for _ in jobs]
        bar = make_progress(opts["progress"], n * len(jobs), f"{self.name} samples")
        try:
            for k, a, b, e in stream_embeddings(embedder, sources, on_batch=bar.update):
                p, side, _, _ = jobs[k]
                ys[k][a:b] = scores(e, p.target(side))
        finally:
            bar.close()

        results: list[PairResult] = []
        for i, p in enumerate(pairs):
            sign = 1.0 if p.decision == "positive" else -1.0
            maps, info = [], {}
            for side in (0, 1):
                _, _, seg, z = jobs[2 * i + side]
                y = ys[2 * i + side]
                m = z.shape[1]
                kept = z.sum(1).astype(np.float64)
                dist = 1.0 - np.sqrt(kept / m)  # cosine distance to the all-ones vector
                weights = np.sqrt(np.exp(-(dist**2) / float(opts["kernel_width"]) ** 2))
                coef, intercept = fit_weighted_linear(z, y, weights)
                pred = intercept + z @ coef
                k = min(int(opts["top_k"]), m)
                top = np.argsort(sign * coef, kind="stable")[-k:]
                value = np.zeros(m)
                value[top] = np.maximum(sign * coef[top], 0.0)
                heat = value[seg]
                hi = float(heat.max())
                maps.append((heat / hi if hi > 0 else heat).astype(np.float32))
                info[("probe", "gallery")[side]] = {
                    "superpixels": m,
                    "top_superpixels": [int(t) for t in top[::-1]],
                    "intercept": intercept,
                    "mean_abs_error": float(np.mean(np.abs(pred - y))),
                    "empty": hi <= 0,
                }
            notes: dict[str, Any] = {
                "verifier_calls": 2 * n,
                "surrogate": info,
                "heatmaps": "probe perturbed against the gallery's embedding, and vice versa; "
                "top-k superpixels valued by their coefficient, divided by the largest",
                "explains": (
                    "similarity: the top-k superpixels with the largest positive coefficients"
                    if sign > 0
                    else "extension for a negative decision: the top-k superpixels with the "
                    "most negative coefficients (their presence lowers the similarity)"
                ),
            }
            results.append(PairResult(np.stack(maps), notes))
        return results
