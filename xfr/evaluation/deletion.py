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

Equal heatmap values are ordered at random (a seed per pair), never by raster position. The
unperturbed and fully zeroed images are embedded once, not once per step, and only when a step
reads them (a curve without its unperturbed step embeds no unperturbed probe). The perturbed faces
are built a few pairs at a time, just before they are embedded, in calls of at most
``batch_size`` images, at most :data:`CPU_EMBED_CHUNK` for a verifier on the CPU (the distances
are the same, bit for bit, for a verifier whose embeddings do not depend on the batch).
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
#: Most images per ``verifier.embed`` call when the verifier's ``device`` is the CPU (and how
#: many perturbed faces are built at a time). Measured on the default model (2-core Xeon, 2
#: threads, 450 perturbed LFW faces): calls of 18-36 images take 1.36-1.47 s, 128 images 2.1 s,
#: 256 images 2.5 s (a model's large activations are fresh memory at every call: 1 million
#: page faults against 16 thousand). A whole deletion curve of 50 pairs in calls of 12-64 images:
#: 1.39-1.50 s, best at 20-32. On a GPU, or for a verifier without a ``device``, calls hold
#: ``batch_size`` images.
CPU_EMBED_CHUNK = 32


def step_fractions(steps: int) -> tuple[float, ...]:
    """``steps`` equal steps from 0 to 1: ``linspace(0, 1, steps + 1)``, each value rounded to
    10 decimals (so that 10 steps give exactly 0, 0.1, ..., 1, the default)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"the number of curve steps must be an integer >= 1, got {steps!r}")
    return tuple(round(float(x), 10) for x in np.linspace(0.0, 1.0, int(steps) + 1))


#: Fractions of pixels, one per curve step: a sequence or a 1-D array.
Fractions = Sequence[float] | np.ndarray

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


def check_fractions(fractions: Fractions) -> np.ndarray:
    """``fractions`` as a float array: increasing, within [0, 1], at least two."""
    f = np.asarray(fractions, dtype=np.float64)
    if f.ndim != 1 or len(f) < 2:
        raise ValueError(f"fractions must be a 1-D sequence of two or more values: {fractions}")
    if not np.isfinite(f).all() or f.min() < 0 or f.max() > 1:
        raise ValueError(f"fractions must lie in [0, 1], got {fractions}")
    if np.any(np.diff(f) <= 0):
        raise ValueError(f"fractions must be strictly increasing, got {fractions}")
    return f


def auc(fractions: Fractions, values: np.ndarray) -> np.ndarray:
    """Area under ``values`` (last axis) over the fraction axis, by the trapezoid rule.

    ``values`` is ``(S,)`` or ``(..., S)``; the result has the leading shape.
    """
    x = check_fractions(fractions)
    y = np.asarray(values, dtype=np.float64)
    if y.shape[-1] != len(x):
        raise ValueError(f"values have {y.shape[-1]} steps, fractions {len(x)}")
    area: np.ndarray = ((y[..., 1:] + y[..., :-1]) / 2 * np.diff(x)).sum(axis=-1)
    return area


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
    flat = -maps.reshape(n, h * w)
    # The order of np.lexsort((jitter, flat[i])) (descending map, ties by jitter, then by
    # index), computed as one fast sort of all maps, then a sort of the tied pixels only.
    orders = np.argsort(flat, axis=1)
    ranks = np.empty((n, h * w), dtype=np.int32)
    for i in range(n):
        order = orders[i]
        values = flat[i, order]
        tied = np.flatnonzero(values[1:] == values[:-1])
        if len(tied) > h * w // 8:  # many ties: one sort by both keys is faster
            jitter = np.random.default_rng(seeds[i]).random(h * w)
            order = np.lexsort((jitter, flat[i]))
        elif len(tied):
            jitter = np.random.default_rng(seeds[i]).random(h * w)
            at = np.union1d(tied, tied + 1)  # sorted positions inside runs of equal values
            run = np.cumsum(np.r_[True, values[at[1:]] != values[at[:-1]]] |
                            np.r_[True, at[1:] != at[:-1] + 1])
            pixels = order[at]
            order[at] = pixels[np.lexsort((pixels, jitter[pixels], run))]
        ranks[i, order] = np.arange(h * w, dtype=np.int32)
    return ranks.reshape(n, h, w)


def step_counts(fractions: Fractions, pixels: int) -> np.ndarray:
    """Pixels removed (deletion) or revealed (insertion) at each step: ``round(f * pixels)``."""
    counts: np.ndarray = np.rint(check_fractions(fractions) * pixels).astype(np.int64)
    return counts


def perturbed(images: torch.Tensor, ranks: torch.Tensor, counts: Sequence[int] | np.ndarray,
              mode: str) -> torch.Tensor:
    """``(N, S, C, H, W)``: ``images`` ``(N, C, H, W)`` with the top-``counts[s]`` pixels of
    ``ranks`` ``(N, H, W)`` zeroed (deletion) or with only those pixels kept (insertion)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    k = torch.as_tensor(np.asarray(counts), device=ranks.device).view(1, -1, 1, 1)
    top = ranks[:, None] < k  # (N, S, H, W): the pixels counted at this step
    keep = ~top if mode == "deletion" else top
    return images[:, None] * keep[:, :, None].to(images.dtype)


def _device_of(verifier: Any) -> torch.device | None:
    """The verifier's ``device`` if it names one, else ``None`` (leave the faces where they
    are)."""
    device = getattr(verifier, "device", None)
    try:
        return None if device is None else torch.device(device)
    except (TypeError, RuntimeError):
        return None


def embed_chunk(verifier: Any, batch_size: int) -> int:
    """Most images per ``verifier.embed`` call: ``batch_size``, at most :data:`CPU_EMBED_CHUNK`
    when the verifier says its ``device`` is the CPU."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    device = _device_of(verifier)
    on_cpu = device is not None and device.type == "cpu"
    return min(int(batch_size), CPU_EMBED_CHUNK) if on_cpu else int(batch_size)


def _embed(verifier: Any, images: torch.Tensor, chunk: int) -> torch.Tensor:
    """``verifier.embed`` of ``images`` in calls of at most ``chunk`` images."""
    if images.shape[0] <= chunk:
        emb: torch.Tensor = verifier.embed(images)
        return emb
    return torch.cat([verifier.embed(part) for part in images.split(chunk)])


def _step_kinds(counts: np.ndarray, mode: str, pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the steps at which a face is unperturbed and at which it is blank (zeroed)."""
    as_original = counts == (0 if mode == "deletion" else pixels)
    as_blank = counts == (pixels if mode == "deletion" else 0)
    return as_original, as_blank


def _embed_steps(verifier: Any, images: torch.Tensor, ranks: torch.Tensor, counts: np.ndarray,
                 mode: str, chunk: int, original: torch.Tensor | None,
                 blank: torch.Tensor | None) -> torch.Tensor:
    """Embeddings ``(N, S, D)`` of every perturbed step; unperturbed and blank steps reuse
    ``original`` ``(N, D)`` and ``blank`` ``(D,)`` (``None`` when the steps have none). The
    perturbed faces of as many pairs as fill ``chunk`` images (at least one pair) are built at
    a time and embedded in calls of at most ``chunk`` images."""
    n, pixels = images.shape[0], images.shape[-1] * images.shape[-2]
    as_original, as_blank = _step_kinds(counts, mode, pixels)
    todo = np.flatnonzero(~(as_original | as_blank))
    # (rows, steps, embeddings) to write, in the order original, blank, perturbed
    parts: list[tuple[slice, Any, torch.Tensor]] = []
    if as_original.any():
        assert original is not None
        parts.append((slice(None), as_original, original[:, None]))
    if as_blank.any():
        assert blank is not None
        parts.append((slice(None), as_blank, blank))
    if len(todo):
        steps = counts[todo]
        per = max(1, chunk // len(todo))  # pairs per block of perturbed faces
        for s in range(0, n, per):
            block = perturbed(images[s : s + per], ranks[s : s + per], steps, mode)
            emb = _embed(verifier, block.reshape(-1, *images.shape[1:]), chunk)
            parts.append((slice(s, s + per), todo, emb.reshape(-1, len(todo), emb.shape[-1])))
    first = parts[0][2]
    out = torch.empty((n, len(counts), first.shape[-1]), dtype=first.dtype)
    for rows, where, emb in parts:
        out[rows, torch.as_tensor(where)] = emb.cpu().to(out.dtype)
    return out


def curve_distances(verifier: Any, probes: torch.Tensor, galleries: torch.Tensor,
                    probe_maps: np.ndarray, gallery_maps: np.ndarray | None = None, *,
                    fractions: Fractions = DEFAULT_FRACTIONS, mode: str = "deletion",
                    seeds: Sequence[int] | None = None, batch_size: int = 512,
                    embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
                    blank: torch.Tensor | None = None) -> np.ndarray:
    """Distances ``(N, S)`` of every pair at every step of a deletion or insertion curve.

    Only the probes are perturbed when ``gallery_maps`` is ``None`` (positive pairs);
    otherwise both faces are, each by its own map (negative pairs). ``seeds`` (one per pair,
    default ``0..N-1``) break ties among equal heatmap values. ``embeddings`` (the
    unperturbed probes' and galleries' embeddings) and ``blank`` (a zeroed image's embedding)
    may be passed when already known, to save their embedding calls. ``batch_size`` is the most
    images per ``verifier.embed`` call (at most :data:`CPU_EMBED_CHUNK` on the CPU:
    :func:`embed_chunk`); it does not change the distances of a verifier whose embeddings do
    not depend on the batch.
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
    chunk = embed_chunk(verifier, batch_size)
    device = _device_of(verifier)  # the perturbed faces are made where the model runs
    with torch.inference_mode():
        return _curve_distances(verifier, probes.to(device).float(),
                                galleries.to(device).float(), probe_maps, gallery_maps, counts,
                                mode, seeds, chunk, embeddings, blank)


def _curve_distances(verifier: Any, probes: torch.Tensor, galleries: torch.Tensor,
                     probe_maps: np.ndarray, gallery_maps: np.ndarray | None,
                     counts: np.ndarray, mode: str, seeds: list[int], chunk: int,
                     embeddings: tuple[torch.Tensor, torch.Tensor] | None,
                     blank: torch.Tensor | None) -> np.ndarray:
    """:func:`curve_distances` after its checks, in calls of at most ``chunk`` images."""
    n = probes.shape[0]
    # Only what the steps read is embedded: a probe's unperturbed embedding only for an
    # unperturbed step, a gallery's also when it is never perturbed (positive pairs).
    as_original, as_blank = _step_kinds(counts, mode, probes.shape[-1] * probes.shape[-2])
    e_p: torch.Tensor | None
    e_g: torch.Tensor | None
    if embeddings is None:
        e_p = _embed(verifier, probes, chunk) if as_original.any() else None
        e_g = (_embed(verifier, galleries, chunk)
               if as_original.any() or gallery_maps is None else None)
    else:
        e_p, e_g = embeddings
        if e_p.shape[0] != n or e_g.shape[0] != n:
            raise ValueError(f"embeddings must have {n} rows each, got {e_p.shape[0]} and "
                             f"{e_g.shape[0]}")
    if blank is None and as_blank.any():
        blank = verifier.embed(torch.zeros_like(probes[:1]))[0]
    ranks_p = torch.from_numpy(pixel_ranks(probe_maps, seeds)).to(probes.device)
    steps_p = _embed_steps(verifier, probes, ranks_p, counts, mode, chunk, e_p, blank)
    if gallery_maps is None:
        assert e_g is not None
        steps_g = e_g.cpu()[:, None].expand_as(steps_p)
    else:
        # a different tie-break stream for the gallery than for the probe
        ranks_g = torch.from_numpy(
            pixel_ranks(gallery_maps, [s + 7919 for s in seeds])).to(galleries.device)
        steps_g = _embed_steps(verifier, galleries, ranks_g, counts, mode, chunk, e_g, blank)
    d = verifier.distance(steps_p.reshape(n * len(counts), -1),
                          steps_g.reshape(n * len(counts), -1).to(steps_p.dtype))
    distances: np.ndarray = d.reshape(n, len(counts)).double().cpu().numpy()
    return distances


def rate_curve(distances: np.ndarray, threshold: float, positive: bool) -> np.ndarray:
    """Per-pair 0/1 outcome ``(N, S)``: accepted (:func:`~xfr.interfaces.vocabulary.is_positive`,
    ``distance < threshold``) for positive pairs (its mean is the recall), rejected for negative
    pairs (its mean is the TNR)."""
    d = np.asarray(distances, dtype=np.float64)
    accepted = is_positive(d, threshold)
    return (accepted if positive else ~accepted).astype(np.float64)


def unperturbed_step(fractions: Fractions, mode: str) -> int | None:
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


__all__ = ["BETTER", "CPU_EMBED_CHUNK", "DEFAULT_FRACTIONS", "DEFAULT_STEPS", "KINDS", "MODES",
           "auc", "better", "check_fractions", "continuous_curve", "curve_distances",
           "embed_chunk", "perturbed", "pixel_ranks", "rate_curve", "step_counts",
           "step_fractions", "unperturbed_step"]
