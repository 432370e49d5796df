"""Deletion and insertion curves of heatmaps (paper Sec. 4, Fig. 2; Chefer et al.'s perturbation
test; docs/method.md, "Deletion and insertion curves").

Deletion: a face's pixels are removed (zeroed, all channels) in descending heatmap order, a
fraction ``f`` of the image at each step (default 0, 0.1, ..., 1). Insertion: the reverse
reading, starting from a zeroed image and revealing pixels in descending heatmap order.

- Positive pairs (true positives): only the probe is perturbed, by its own heatmap; the curve is
  the recall, the fraction of pairs still accepted (distance below the verifier's threshold).
- Negative pairs (true negatives): probe and gallery are both perturbed, each by its own
  heatmap; the curve is the true-negative rate, the fraction still rejected.

A faithful heatmap makes the deletion curve fall fast (low area under the curve) and the
insertion curve rise fast for positive pairs (high area). For negative pairs, both deletion and
insertion make the faces look alike in the end (two black images are identical), so insertion's
TNR also starts at 0 (two black faces) and a faithful heatmap makes it rise fast.

Besides this thresholded rate, a *continuous* curve is read from the same distances (no extra
embedding): for each pair and step ``(d_k - d_0) / threshold``, where ``d_k`` is the pair's
distance at step ``k`` and ``d_0`` the unperturbed pair's distance (:func:`continuous_curve`);
its mean over pairs is the "mean normalised distance to the unperturbed pair". It sees every
change of distance, not only the ones that cross the threshold.

Which direction is better (:data:`BETTER`, :func:`better`), for a faithful heatmap:

============  ==========  ===========================  ===============================
curve         decision    rate (recall / TNR)          continuous ``(d_k - d_0) / th``
============  ==========  ===========================  ===============================
deletion      positive    lower (recall falls fast)    higher (distance rises fast)
insertion     positive    higher (recall rises fast)   lower (distance returns fast)
deletion      negative    lower (TNR falls fast)       lower (faces become alike fast)
insertion     negative    higher (TNR rises fast)      higher (distance returns fast)
============  ==========  ===========================  ===============================

Equal heatmap values are ordered at random (a seed per pair), never by raster position. All
steps of all pairs go through ``verifier.embed`` in large batches; the unperturbed and fully
zeroed images are embedded once, not once per step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from xfr.interfaces.vocabulary import is_positive

MODES = ("deletion", "insertion")
#: The two readings of a curve's distances: thresholded outcome and normalised distance.
KINDS = ("rate", "continuous")
DEFAULT_STEPS = 10


def step_fractions(steps: int) -> tuple[float, ...]:
    """``steps`` equal steps from 0 to 1: ``linspace(0, 1, steps + 1)``, each value rounded to
    10 decimals (so that 10 steps give exactly 0, 0.1, ..., 1, the default)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"the number of curve steps must be an integer >= 1, got {steps!r}")
    return tuple(round(float(x), 10) for x in np.linspace(0.0, 1.0, int(steps) + 1))


DEFAULT_FRACTIONS: tuple[float, ...] = step_fractions(DEFAULT_STEPS)

#: ``(kind, mode, decision) -> "lower" | "higher"``: which AUC is better (module docstring).
BETTER: dict[tuple[str, str, str], str] = {
    ("rate", "deletion", "positive"): "lower",
    ("rate", "insertion", "positive"): "higher",
    ("rate", "deletion", "negative"): "lower",
    ("rate", "insertion", "negative"): "higher",
    ("continuous", "deletion", "positive"): "higher",
    ("continuous", "insertion", "positive"): "lower",
    ("continuous", "deletion", "negative"): "lower",
    ("continuous", "insertion", "negative"): "higher",
}


def better(kind: str, mode: str, decision: str) -> str:
    """``"lower"`` or ``"higher"``: which area under the ``kind`` curve (``"rate"`` or
    ``"continuous"``) of ``mode`` on ``decision`` (``"positive"``/``"negative"``) pairs is the
    more faithful (paper Sec. 4; the table of the module docstring)."""
    try:
        return BETTER[(kind, mode, decision)]
    except KeyError:
        raise ValueError(f"no curve {kind!r}/{mode!r}/{decision!r}; kinds {KINDS}, modes "
                         f"{MODES}, decisions positive/negative") from None


def check_fractions(fractions: Sequence[float]) -> np.ndarray:
    """``fractions`` as a float array: increasing, within [0, 1], at least two."""
    f = np.asarray(fractions, dtype=np.float64)
    if f.ndim != 1 or len(f) < 2:
        raise ValueError(f"fractions must be a 1-D sequence of two or more values: {fractions}")
    if not np.isfinite(f).all() or f.min() < 0 or f.max() > 1:
        raise ValueError(f"fractions must lie in [0, 1], got {fractions}")
    if np.any(np.diff(f) <= 0):
        raise ValueError(f"fractions must be strictly increasing, got {fractions}")
    return f


def auc(fractions: Sequence[float], values: np.ndarray) -> np.ndarray:
    """Area under ``values`` (last axis) over the fraction axis, by the trapezoid rule.

    ``values`` is ``(S,)`` or ``(..., S)``; the result has the leading shape.
    """
    x = check_fractions(fractions)
    y = np.asarray(values, dtype=np.float64)
    if y.shape[-1] != len(x):
        raise ValueError(f"values have {y.shape[-1]} steps, fractions {len(x)}")
    return ((y[..., 1:] + y[..., :-1]) / 2 * np.diff(x)).sum(axis=-1)


def pixel_ranks(heatmaps: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
    """Rank of every pixel in descending heatmap order (0 = most relevant), ``(N, H, W)`` int32.

    Ties are broken by a random order drawn from ``seeds[i]`` for map ``i``.
    """
    maps = np.asarray(heatmaps, dtype=np.float64)
    if maps.ndim != 3:
        raise ValueError(f"heatmaps must be (N, H, W), got shape {maps.shape}")
    if len(seeds) != maps.shape[0]:
        raise ValueError(f"{len(seeds)} seeds for {maps.shape[0]} heatmaps")
    if not np.isfinite(maps).all():
        raise ValueError("heatmaps contain NaN or infinite values")
    n, h, w = maps.shape
    ranks = np.empty((n, h * w), dtype=np.int32)
    for i in range(n):
        jitter = np.random.default_rng(seeds[i]).random(h * w)
        order = np.lexsort((jitter, -maps[i].ravel()))  # primary key last: descending map
        ranks[i, order] = np.arange(h * w, dtype=np.int32)
    return ranks.reshape(n, h, w)


def step_counts(fractions: Sequence[float], pixels: int) -> np.ndarray:
    """Pixels removed (deletion) or revealed (insertion) at each step: ``round(f * pixels)``."""
    return np.rint(check_fractions(fractions) * pixels).astype(np.int64)


def perturbed(images: torch.Tensor, ranks: torch.Tensor, counts: Sequence[int],
              mode: str) -> torch.Tensor:
    """``(N, S, C, H, W)``: ``images`` ``(N, C, H, W)`` with the top-``counts[s]`` pixels of
    ``ranks`` ``(N, H, W)`` zeroed (deletion) or with only those pixels kept (insertion)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    k = torch.as_tensor(np.asarray(counts), device=ranks.device).view(1, -1, 1, 1)
    top = ranks[:, None] < k  # (N, S, H, W): the pixels counted at this step
    keep = ~top if mode == "deletion" else top
    return images[:, None] * keep[:, :, None].to(images.dtype)


def _embed_steps(verifier: Any, images: torch.Tensor, ranks: torch.Tensor, counts: np.ndarray,
                 mode: str, batch_size: int, original: torch.Tensor,
                 blank: torch.Tensor) -> torch.Tensor:
    """Embeddings ``(N, S, D)`` of every perturbed step; unperturbed and blank steps reuse
    ``original`` ``(N, D)`` and ``blank`` ``(D,)``."""
    n, pixels = images.shape[0], images.shape[-1] * images.shape[-2]
    as_original = counts == (0 if mode == "deletion" else pixels)
    as_blank = counts == (pixels if mode == "deletion" else 0)
    todo = np.flatnonzero(~(as_original | as_blank))
    dim = original.shape[-1]
    out = torch.empty((n, len(counts), dim), dtype=original.dtype)
    out[:, torch.from_numpy(as_original)] = original[:, None].cpu().to(out.dtype)
    out[:, torch.from_numpy(as_blank)] = blank.cpu().to(out.dtype)
    if len(todo):
        per = max(1, batch_size // len(todo))
        for s in range(0, n, per):
            batch = perturbed(images[s : s + per], ranks[s : s + per], counts[todo], mode)
            emb = verifier.embed(batch.reshape(-1, *images.shape[1:]))
            emb = emb.reshape(-1, len(todo), dim).cpu().to(out.dtype)
            out[s : s + per, torch.from_numpy(todo)] = emb
    return out


def curve_distances(verifier: Any, probes: torch.Tensor, galleries: torch.Tensor,
                    probe_maps: np.ndarray, gallery_maps: np.ndarray | None = None, *,
                    fractions: Sequence[float] = DEFAULT_FRACTIONS, mode: str = "deletion",
                    seeds: Sequence[int] | None = None, batch_size: int = 512,
                    embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
                    blank: torch.Tensor | None = None) -> np.ndarray:
    """Distances ``(N, S)`` of every pair at every step of a deletion or insertion curve.

    Only the probes are perturbed when ``gallery_maps`` is ``None`` (positive pairs);
    otherwise both faces are, each by its own map (negative pairs). ``seeds`` (one per pair,
    default ``0..N-1``) break ties among equal heatmap values. ``embeddings`` (the
    unperturbed probes' and galleries' embeddings) and ``blank`` (a zeroed image's embedding)
    may be passed when already known, to save their embedding calls.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if probes.ndim != 4 or probes.shape != galleries.shape:
        raise ValueError(f"probes {tuple(probes.shape)} and galleries "
                         f"{tuple(galleries.shape)} must be equal (N, 3, H, W) batches")
    n, _, h, w = probes.shape
    for what, m in (("probe_maps", probe_maps), ("gallery_maps", gallery_maps)):
        if m is not None and np.asarray(m).shape != (n, h, w):
            raise ValueError(f"{what} must have shape {(n, h, w)}, got {np.asarray(m).shape}")
    seeds = list(range(n)) if seeds is None else list(seeds)
    counts = step_counts(fractions, h * w)
    probes, galleries = probes.float(), galleries.float()
    if embeddings is None:
        e_p, e_g = verifier.embed(probes), verifier.embed(galleries)
    else:
        e_p, e_g = embeddings
        if e_p.shape[0] != n or e_g.shape[0] != n:
            raise ValueError(f"embeddings must have {n} rows each, got {e_p.shape[0]} and "
                             f"{e_g.shape[0]}")
    if blank is None:
        blank = verifier.embed(torch.zeros_like(probes[:1]))[0]
    ranks_p = torch.from_numpy(pixel_ranks(probe_maps, seeds)).to(probes.device)
    steps_p = _embed_steps(verifier, probes, ranks_p, counts, mode, batch_size, e_p, blank)
    if gallery_maps is None:
        steps_g = e_g.cpu()[:, None].expand_as(steps_p)
    else:
        # a different tie-break stream for the gallery than for the probe
        ranks_g = torch.from_numpy(
            pixel_ranks(gallery_maps, [s + 7919 for s in seeds])).to(galleries.device)
        steps_g = _embed_steps(verifier, galleries, ranks_g, counts, mode, batch_size, e_g, blank)
    d = verifier.distance(steps_p.reshape(n * len(counts), -1),
                          steps_g.reshape(n * len(counts), -1).to(steps_p.dtype))
    return d.reshape(n, len(counts)).double().cpu().numpy()


def rate_curve(distances: np.ndarray, threshold: float, positive: bool) -> np.ndarray:
    """Per-pair 0/1 outcome ``(N, S)``: accepted (:func:`~xfr.interfaces.vocabulary.is_positive`,
    ``distance < threshold``) for positive pairs (its mean is the recall), rejected for negative
    pairs (its mean is the TNR)."""
    d = np.asarray(distances, dtype=np.float64)
    accepted = is_positive(d, threshold)
    return (accepted if positive else ~accepted).astype(np.float64)


def unperturbed_step(fractions: Sequence[float], mode: str) -> int | None:
    """Index of the step at which the pair is unperturbed (deletion: fraction 0, insertion:
    fraction 1), or ``None`` when the fractions do not include it."""
    f = check_fractions(fractions)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "deletion":
        return 0 if f[0] == 0 else None
    return len(f) - 1 if f[-1] == 1 else None


def continuous_curve(distances: np.ndarray, unperturbed: np.ndarray,
                     threshold: float) -> np.ndarray:
    """Per-pair normalised distance change ``(N, S)``: ``(d_k - d_0) / threshold`` for
    distances ``(N, S)`` and each pair's unperturbed distance ``d_0`` ``(N,)``."""
    d = np.asarray(distances, dtype=np.float64)
    d0 = np.asarray(unperturbed, dtype=np.float64)
    if d.ndim != 2 or d0.shape != (d.shape[0],):
        raise ValueError(f"distances must be (N, S) and unperturbed (N,), got {d.shape} and "
                         f"{d0.shape}")
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    return (d - d0[:, None]) / float(threshold)


__all__ = ["BETTER", "DEFAULT_FRACTIONS", "DEFAULT_STEPS", "KINDS", "MODES", "auc", "better",
           "check_fractions", "continuous_curve", "curve_distances", "perturbed", "pixel_ranks",
           "rate_curve", "step_counts", "step_fractions", "unperturbed_step"]
