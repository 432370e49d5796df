"""The paper's explainer (Correia et al., Sec. 3, Fig. 1), for positive AND negative decisions.

Per pair: decision (distance vs. threshold) -> attention maps of both faces (an attention
generator; default No-Grad ViT-LRP, the paper's best) -> Otsu masks -> candidate masks
(positive: OIM, UM; negative: OIM, UM, N-IUM) -> the masked faces through the verifier
(positive: the PP pair = probe + masked gallery and the PG pair = gallery + masked probe;
negative: the NPG pair = masked probe + masked gallery) -> selection (SM+ eq. 1 / SM- eq. 2, or
a fixed strategy) -> the chosen strategy's heatmap values -> dilation + Gaussian smoothing
(Sec. 3.1: 8x8 elliptical dilation, 56x56 Gaussian with sigma 56/8.5, the authors' kernel).

The same mask is removed from both faces (eq. 1-2; docs/method.md), so the final heatmap is one
map of the pair, drawn on both faces: ``Explanation.heatmaps[0]`` (probe) and ``[1]``
(gallery) are equal.

Every stage runs once per batch of pairs: one embedding call for the originals, one attention
call for all faces, one embedding call for all masked faces of all candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from xfr.explanation import Candidate, Explanation

DEFAULT_STRATEGIES: dict[str, tuple[str, ...]] = {
    "positive": ("oim", "um"),
    "negative": ("oim", "um", "nium"),
}
FILLS = ("zeros", "mean", "blur")


def _faces_uint8(images: torch.Tensor) -> np.ndarray:
    return images.detach().cpu().clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def embed_in_chunks(verifier: Any, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``verifier.embed`` over ``images`` in chunks of ``batch_size`` (bounded memory)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return torch.cat([verifier.embed(c) for c in images.split(batch_size)])


def fill_images(images: torch.Tensor, fill: str) -> torch.Tensor:
    """What removed pixels become: zeros (the authors' code), the image's mean colour, or a
    strong blur of the image."""
    if fill == "zeros":
        return torch.zeros_like(images)
    if fill == "mean":
        return images.mean(dim=(2, 3), keepdim=True).expand_as(images)
    if fill == "blur":
        from torchvision.transforms.functional import gaussian_blur

        return gaussian_blur(images, kernel_size=[31, 31], sigma=[8.0, 8.0])
    raise ValueError(f"unknown fill {fill!r}; choose one of {FILLS}")


class PaperExplainer:
    """Attention maps + mask strategies + selection metric (paper Sec. 3).

    Options (constructor or per call): ``generator`` (attention plugin name, default
    ``"nograd-lrp"``), ``generator_options`` (dict), ``target`` (``"auto"``, ``"logit"``,
    ``"embedding"`` or ``"similarity"``: the other face's embedding), ``strategies`` (names, or
    a dict per decision; default OIM+UM positive, OIM+UM+N-IUM negative), ``selector``
    (``"metric"`` or ``"fixed:oim"``...), ``fill`` (``"zeros"``, ``"mean"``, ``"blur"``),
    ``dilate_size`` (8), ``gaussian_size`` (56), ``sigma`` (56/8.5), ``gaussian_centre``
    (``"authors"``: the paper's authors' kernel, peak on tap 27 of 56; ``"opencv"``: the
    symmetric kernel of ``cv2.getGaussianKernel``), ``batch_size`` (256).
    """

    name = "paper"

    def __init__(self, **options: Any) -> None:
        self.options: dict[str, Any] = {
            "generator": "nograd-lrp", "generator_options": {}, "target": "auto",
            "strategies": None, "selector": "metric", "fill": "zeros", "dilate_size": 8,
            "gaussian_size": 56, "sigma": 56 / 8.5, "gaussian_centre": "authors",
            "batch_size": 256,
        }
        self._set(options)

    def _set(self, options: dict[str, Any]) -> None:
        unknown = set(options) - set(self.options)
        if unknown:
            raise ValueError(f"unknown option(s) of the paper explainer: {sorted(unknown)}; "
                             f"known: {sorted(self.options)}")
        self.options.update(options)

    def _strategies(self, opts: dict[str, Any], decision: str) -> tuple[str, ...]:
        chosen = opts["strategies"]
        if chosen is None:
            return DEFAULT_STRATEGIES[decision]
        if isinstance(chosen, dict):
            return tuple(chosen.get(decision, DEFAULT_STRATEGIES[decision]))
        if isinstance(chosen, str):
            return tuple(s.strip() for s in chosen.split(",") if s.strip())
        return tuple(chosen)

    def explain_pairs(self, verifier: Any, probes: torch.Tensor, galleries: torch.Tensor,
                      **options: Any) -> list[Explanation]:
        from xfr import kernels, registry

        opts = dict(self.options)
        unknown = set(options) - set(opts)
        if unknown:
            raise ValueError(f"unknown option(s) of the paper explainer: {sorted(unknown)}; "
                             f"known: {sorted(opts)}")
        opts.update(options)
        if opts["fill"] not in FILLS:
            raise ValueError(f"unknown fill {opts['fill']!r}; choose one of {FILLS}")
        probes, galleries = _check_pair_batch(probes, galleries)
        n = probes.shape[0]
        if not hasattr(verifier, "backbone"):
            raise TypeError(
                f"the paper explainer needs a ViT verifier (attention maps); "
                f"{getattr(verifier, 'name', type(verifier).__name__)!r} is a black box: "
                "use a perturbation method (minplus, avg, rise, lime)")

        clock = _StageClock()
        # 1. decision
        faces = torch.cat([probes, galleries])
        bs = int(opts["batch_size"])
        emb = embed_in_chunks(verifier, faces, bs)
        e_p, e_g = emb[:n], emb[n:]
        d = verifier.distance(e_p, e_g).double().cpu().numpy()
        threshold = float(verifier.threshold)
        decisions = ["positive" if di < threshold else "negative" for di in d]
        clock.lap("embed")

        # 2. attention maps (one call for all faces)
        generator = registry.create("attention", opts["generator"], **opts["generator_options"])
        # the other face's embedding is the reference of the "similarity" target
        reference = torch.cat([e_g, e_p]) if opts["target"] == "similarity" else None
        target_used = opts["target"]
        if target_used == "auto":  # docs/method.md, "Targets"
            has_head = verifier.class_logits(e_p[:1]) is not None
            target_used = "logit" if has_head else "embedding"
        maps_t = generator(verifier, faces, target=opts["target"], reference=reference)
        maps = np.ascontiguousarray(maps_t.detach().cpu().numpy(), dtype=np.float32)
        if maps.shape != (2 * n, *faces.shape[-2:]):
            raise ValueError(f"generator {opts['generator']!r} returned maps of shape "
                             f"{maps.shape}, expected {(2 * n, *faces.shape[-2:])}")
        clock.lap("attention")
        # 3. Otsu masks
        _, otsu = kernels.otsu(maps)
        otsu = np.asarray(otsu, dtype=bool)
        map_p, map_g, mask_p, mask_g = maps[:n], maps[n:], otsu[:n], otsu[n:]
        clock.lap("otsu")

        # 4. candidate masks, for every strategy any pair needs
        names = sorted({s for dec in decisions for s in self._strategies(opts, dec)},
                       key=lambda s: (DEFAULT_STRATEGIES["negative"] + (s,)).index(s))
        strategies = {s: registry.create("mask", s) for s in names}
        cand_masks = {s: np.asarray(strategies[s].combine(mask_p, mask_g), dtype=bool)
                      for s in names}
        # 5. masked faces of all candidates through the verifier, in one call
        fill = fill_images(faces, opts["fill"])
        masked = []
        for s in names:
            m = torch.from_numpy(np.concatenate([cand_masks[s], cand_masks[s]])).to(faces.device)
            m = m[:, None].to(faces.dtype)
            masked.append(faces * (1 - m) + fill * m)
        masked_emb = embed_in_chunks(verifier, torch.cat(masked), bs) if names else emb[:0]
        per_strategy = {s: masked_emb[i * 2 * n:(i + 1) * 2 * n] for i, s in enumerate(names)}
        clock.lap("masked_embed")

        selector = registry.create("selector", opts["selector"])
        results: list[Explanation] = []
        for i in range(n):
            decision = decisions[i]
            candidates = []
            for s in self._strategies(opts, decision):
                mask = cand_masks[s][i]
                e_mp, e_mg = per_strategy[s][i : i + 1], per_strategy[s][n + i : n + i + 1]
                if decision == "positive":
                    dist = {"pg": float(verifier.distance(e_g[i : i + 1], e_mp)[0]),
                            "pp": float(verifier.distance(e_p[i : i + 1], e_mg)[0])}
                else:
                    dist = {"npg": float(verifier.distance(e_mp, e_mg)[0])}
                applies = decision in strategies[s].decisions
                candidates.append(Candidate(
                    name=s, mask=mask, removed_area=float(mask.mean()), distances=dist,
                    eligible=applies,
                    reason=None if applies else f"{s} does not explain {decision} decisions"))
            selection = selector.select(decision, float(d[i]), candidates)
            clock.lap("select")
            heatmaps = None
            if selection.strategy is not None:
                raw = strategies[selection.strategy].heatmap(map_p[i], map_g[i], mask_p[i],
                                                             mask_g[i])
                smooth = kernels.smooth_heatmap(
                    np.ascontiguousarray(raw, dtype=np.float32), dilate_size=opts["dilate_size"],
                    gaussian_size=opts["gaussian_size"], sigma=opts["sigma"],
                    centre=opts["gaussian_centre"])
                smooth = np.asarray(smooth, dtype=np.float32)
                heatmaps = np.stack([smooth, smooth])
            clock.lap("smooth")
            results.append(Explanation(
                decision=decision, distance=float(d[i]), threshold=threshold, method=self.name,
                heatmaps=heatmaps, attention_maps=np.stack([map_p[i], map_g[i]]),
                masks=np.stack([mask_p[i], mask_g[i]]), candidates=candidates,
                strategy=selection.strategy, selection_reason=selection.reason,
                faces=np.stack([_faces_uint8(probes[i : i + 1])[0],
                                _faces_uint8(galleries[i : i + 1])[0]]),
                notes={"generator": opts["generator"], "target": target_used,
                       "selector": opts["selector"], "fill": opts["fill"],
                       "verifier": getattr(verifier, "name", type(verifier).__name__),
                       "smoothing": {"dilate_size": opts["dilate_size"],
                                     "gaussian_size": opts["gaussian_size"],
                                     "sigma": opts["sigma"],
                                     "gaussian_centre": opts["gaussian_centre"]}}))
        timings = clock.per_pair(n)
        for r in results:
            r.notes["seconds_per_pair"] = timings
        return results


class _StageClock:
    """Wall time per pipeline stage (shared by the pairs of one batch)."""

    def __init__(self) -> None:
        import time

        self._now = time.perf_counter
        self._last = self._now()
        self.seconds: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = self._now()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._last
        self._last = now

    def per_pair(self, n: int) -> dict[str, float]:
        return {k: v / n for k, v in self.seconds.items()}


def _check_pair_batch(probes: Any, galleries: Any) -> tuple[torch.Tensor, torch.Tensor]:
    for what, t in (("probes", probes), ("galleries", galleries)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{what} must be a torch.Tensor (N, 3, S, S), got {type(t).__name__}")
        if t.ndim != 4 or t.shape[1] != 3:
            raise ValueError(f"{what} must have shape (N, 3, S, S), got {tuple(t.shape)}")
        if t.shape[0] == 0:
            raise ValueError(f"{what} is an empty batch")
        if not torch.isfinite(t).all():
            raise ValueError(f"{what} contain NaN or infinite values")
    if probes.shape != galleries.shape:
        raise ValueError(f"probes {tuple(probes.shape)} and galleries {tuple(galleries.shape)} "
                         "differ in shape")
    return probes.float(), galleries.float()


__all__: Sequence[str] = ["PaperExplainer", "embed_in_chunks", "fill_images"]
