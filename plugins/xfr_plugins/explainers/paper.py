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

from xfr.errors import OptionError, OptionTypeError, PluginOutputError
from xfr.explanation import Candidate, Explanation
from xfr.interfaces.images import check_face_pairs, faces_uint8
from xfr.interfaces.vocabulary import (
    BEST_STRATEGY,
    DECISIONS,
    DILATE_SIZE,
    GAUSSIAN_SIGMA,
    GAUSSIAN_SIZE,
    POSITIVE,
    decide,
    paper_strategies,
)

#: The candidates of each decision unless ``strategies`` says otherwise: the paper's (OIM, UM
#: for a positive decision, Sec. 3.2; OIM, UM, N-IUM for a negative one, Sec. 3.3).
DEFAULT_STRATEGIES: dict[str, tuple[str, ...]] = {d: paper_strategies(d) for d in DECISIONS}
FILLS = ("zeros", "mean", "blur")
GAUSSIAN_CENTRES = ("authors", "opencv")


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
    raise OptionError(f"unknown fill {fill!r}; choose one of {FILLS}")


def _names(value: Any, what: str) -> tuple[str, ...]:
    """``"oim,um"`` or ``["oim", "um"]`` -> ``("oim", "um")``, each name registered."""
    from xfr import registry

    if isinstance(value, str):
        names = tuple(s.strip() for s in value.split(",") if s.strip())
    elif isinstance(value, (list, tuple)) and all(isinstance(s, str) for s in value):
        names = tuple(s.strip() for s in value)
    else:
        raise OptionTypeError(f"{what} must be mask strategy names ('oim,um' or a list of "
                              f"names), got {value!r}")
    if not names:
        raise OptionError(f"{what} is empty: give at least one mask strategy")
    for name in names:
        registry.get("mask", name)  # UnknownNameError listing the known names
    return tuple(dict.fromkeys(names))


def normalise_strategies(value: Any) -> dict[str, tuple[str, ...]] | None:
    """The ``strategies`` option as ``{decision: names}`` (``None``: the paper's defaults).

    ``"oim,um"`` or a list applies to both decisions (a strategy that does not explain a
    decision is listed as not eligible for it); a dict gives them per decision
    (``{"positive": "oim", "negative": ["oim", "nium"]}``); a missing decision keeps its
    defaults. Every name must be a registered mask strategy (paper Sec. 3.2-3.3)."""
    if value is None:
        return None
    if isinstance(value, dict):
        unknown = sorted(set(map(str, value)) - set(DECISIONS))
        if unknown:
            raise OptionError(f"strategies: unknown decision(s) {unknown}; use 'positive' "
                              "and/or 'negative'")
        return {d: _names(value[d], f"strategies[{d!r}]") if d in value
                else DEFAULT_STRATEGIES[d] for d in DECISIONS}
    names = _names(value, "strategies")
    return {d: names for d in DECISIONS}


def fixed_strategy(selector: str) -> str | None:
    """The strategy a ``fixed:NAME`` selector spec names (``"fixed"`` alone: ``"oim"``, the
    paper's conclusion, :data:`~xfr.interfaces.vocabulary.BEST_STRATEGY`)."""
    name, _, argument = selector.partition(":")
    if name.strip() != "fixed":
        return None
    return argument.strip() or BEST_STRATEGY


def check_options(opts: dict[str, Any]) -> dict[str, Any]:
    """The paper explainer's options, checked and normalised without any model: unknown
    plugin names, bad values and wrong types raise :mod:`xfr.errors` exceptions here."""
    from xfr import kernels, registry
    from xfr.interfaces.attention import AttentionTarget

    o = dict(opts)
    for key in ("generator", "selector", "fill", "target", "gaussian_centre"):
        if not isinstance(o[key], str):
            raise OptionTypeError(f"{key} must be a string, got {o[key]!r}")
    registry.get("attention", o["generator"].partition(":")[0].strip())
    if not isinstance(o["generator_options"], dict):
        raise OptionTypeError(f"generator_options must be a dict, got {o['generator_options']!r}")
    targets = AttentionTarget.__args__  # type: ignore[attr-defined]
    if o["target"] not in targets:
        raise OptionError(f"unknown target {o['target']!r}; choose one of {targets}")
    if o["fill"] not in FILLS:
        raise OptionError(f"unknown fill {o['fill']!r}; choose one of {FILLS}")
    if o["gaussian_centre"] not in GAUSSIAN_CENTRES:
        raise OptionError(f"gaussian_centre must be one of {GAUSSIAN_CENTRES}, "
                          f"got {o['gaussian_centre']!r}")
    registry.create("selector", o["selector"])  # unknown selector or bad argument: now
    fixed = fixed_strategy(o["selector"])
    if fixed is not None:
        registry.get("mask", fixed)
    o["strategies"] = normalise_strategies(o["strategies"])
    try:
        kernels._size2(o["dilate_size"], "dilate_size")
        kernels._sigma(o["sigma"])
        size = kernels._int(o["gaussian_size"], "gaussian_size")
        batch = kernels._int(o["batch_size"], "batch_size")
    except TypeError as exc:
        raise OptionTypeError(str(exc)) from None
    except ValueError as exc:
        raise OptionError(str(exc)) from None
    if size < 1 or batch < 1:
        raise OptionError(f"gaussian_size and batch_size must be >= 1, got {size} and {batch}")
    return o


def _fault(kind: str, name: str, what: str) -> PluginOutputError:
    """The error for a plugin's output that breaks its contract, naming the plugin."""
    from xfr import registry

    return PluginOutputError(f"{registry.describe(kind, name)}: {what}")


def _as_numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return value


def check_strategy(strategy: Any, name: str) -> Any:
    """A built mask strategy with ``combine``, ``heatmap`` and ``decisions`` (a subset of
    positive/negative), else :class:`~xfr.errors.PluginOutputError` naming the plugin."""
    for method in ("combine", "heatmap"):
        if not callable(getattr(strategy, method, None)):
            raise _fault("mask", name, f"the built object has no {method}() method "
                         "(docs/hooks.md, xfr_mask_strategies)")
    decisions = getattr(strategy, "decisions", None)
    if (isinstance(decisions, str) or not isinstance(decisions, (set, frozenset, list, tuple))
            or not set(decisions) <= set(DECISIONS)):
        raise _fault("mask", name, f"decisions must be a set of 'positive'/'negative', got "
                     f"{decisions!r}")
    return strategy


def check_mask(value: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """``combine``'s output as a bool array of ``shape``: bool, or numbers that are all 0 or 1;
    NaN, other values or another shape raise :class:`~xfr.errors.PluginOutputError`."""
    a = _as_numpy(value)
    if not isinstance(a, np.ndarray):
        raise _fault("mask", name, f"combine returned {type(a).__name__}, expected an array")
    if a.shape != shape:
        raise _fault("mask", name, f"combine returned shape {a.shape}, expected {shape}")
    if a.dtype == np.bool_:
        return a
    if not np.issubdtype(a.dtype, np.number):
        raise _fault("mask", name, f"combine returned dtype {a.dtype}, expected bool")
    if not np.isfinite(a).all():
        raise _fault("mask", name, "combine returned NaN or infinite values (a mask must be "
                     "True/False; NaN would remove the whole face)")
    if not np.isin(a, (0, 1)).all():
        raise _fault("mask", name, f"combine returned values other than 0/1 "
                     f"({float(a.min()):g}..{float(a.max()):g}), expected a bool mask")
    return a.astype(bool)


def check_heatmap(value: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """``heatmap``'s output as float32 of ``shape``, finite, else
    :class:`~xfr.errors.PluginOutputError`."""
    a = _as_numpy(value)
    if not isinstance(a, np.ndarray) or not (np.issubdtype(a.dtype, np.number)
                                             or a.dtype == np.bool_):
        raise _fault("mask", name, f"heatmap returned {type(a).__name__}, expected a float "
                     "array")
    if a.shape != shape:
        raise _fault("mask", name, f"heatmap returned shape {a.shape}, expected {shape}")
    if not np.isfinite(a).all():
        raise _fault("mask", name, "heatmap returned NaN or infinite values")
    return np.ascontiguousarray(a, dtype=np.float32)


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
            "strategies": None, "selector": "metric", "fill": "zeros",
            "dilate_size": DILATE_SIZE, "gaussian_size": GAUSSIAN_SIZE, "sigma": GAUSSIAN_SIGMA,
            "gaussian_centre": "authors",
            "batch_size": 256,
        }
        self._set(options)

    def _set(self, options: dict[str, Any]) -> None:
        unknown = set(options) - set(self.options)
        if unknown:
            raise OptionError(f"unknown option(s) of the paper explainer: {sorted(unknown)}; "
                              f"known: {sorted(self.options)}")
        self.options = check_options({**self.options, **options})

    def _strategies(self, opts: dict[str, Any], decision: str) -> tuple[str, ...]:
        chosen = opts["strategies"]
        names = DEFAULT_STRATEGIES[decision] if chosen is None else chosen[decision]
        # ``fixed:NAME`` makes NAME a candidate (docs/hooks.md): a third-party strategy is
        # selected by naming it.
        fixed = fixed_strategy(opts["selector"])
        if fixed is not None and fixed not in names:
            names = (*names, fixed)
        return names

    def check_verifier(self, verifier: Any) -> None:
        """:class:`~xfr.errors.OptionTypeError` unless ``verifier`` is a ViT verifier."""
        if not hasattr(verifier, "backbone"):
            raise OptionTypeError(
                f"the paper explainer needs a ViT verifier (attention maps); "
                f"{getattr(verifier, 'name', type(verifier).__name__)!r} is a black box: "
                "use a perturbation method (minplus, avg, rise, lime)")
        threshold = getattr(verifier, "threshold", None)
        if (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                or not np.isfinite(float(threshold))):
            raise OptionError(f"the verifier's threshold must be a finite number, got "
                              f"{threshold!r}")

    def explain_pairs(self, verifier: Any, probes: torch.Tensor, galleries: torch.Tensor,
                      **options: Any) -> list[Explanation]:
        from xfr import kernels, registry

        opts = dict(self.options)
        unknown = set(options) - set(opts)
        if unknown:
            raise OptionError(f"unknown option(s) of the paper explainer: {sorted(unknown)}; "
                              f"known: {sorted(opts)}")
        if options:
            opts = check_options({**opts, **options})
        probes, galleries = check_face_pairs(
            probes, galleries, getattr(verifier, "input_size", None))
        probes, galleries = probes.float(), galleries.float()
        n = probes.shape[0]
        self.check_verifier(verifier)

        clock = _StageClock()
        # 1. decision
        faces = torch.cat([probes, galleries])
        bs = int(opts["batch_size"])
        emb = embed_in_chunks(verifier, faces, bs)
        e_p, e_g = emb[:n], emb[n:]
        d = verifier.distance(e_p, e_g).double().cpu().numpy()
        threshold = float(verifier.threshold)
        decisions = [decide(di, threshold) for di in d]
        clock.lap("embed")

        # 2. attention maps (one call for all faces)
        generator = registry.create("attention", opts["generator"], **opts["generator_options"])
        # the other face's embedding is the reference of the "similarity" target
        reference = torch.cat([e_g, e_p]) if opts["target"] == "similarity" else None
        # what "auto" resolves to on this verifier, as the generators resolve it
        from xfr_plugins.attention.targets import resolve_target

        target_used = resolve_target(verifier, e_p[:1], opts["target"])
        maps_t = generator(verifier, faces, target=opts["target"], reference=reference)
        maps = np.ascontiguousarray(_as_numpy(maps_t), dtype=np.float32)
        gen_name = opts["generator"].partition(":")[0].strip()
        if maps.shape != (2 * n, *faces.shape[-2:]):
            raise _fault("attention", gen_name, f"returned maps of shape {maps.shape}, "
                         f"expected {(2 * n, *faces.shape[-2:])}")
        if not np.isfinite(maps).all():
            raise _fault("attention", gen_name, "returned NaN or infinite values")
        clock.lap("attention")
        # 3. Otsu masks
        _, otsu = kernels.otsu(maps)
        otsu = np.asarray(otsu, dtype=bool)
        map_p, map_g, mask_p, mask_g = maps[:n], maps[n:], otsu[:n], otsu[n:]
        clock.lap("otsu")

        # 4. candidate masks, for every strategy any pair needs
        names = list(dict.fromkeys(s for dec in DECISIONS if dec in decisions
                                   for s in self._strategies(opts, dec)))
        strategies = {s: check_strategy(registry.create("mask", s), s) for s in names}
        cand_masks = {s: check_mask(strategies[s].combine(mask_p, mask_g), s, mask_p.shape)
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
                if decision == POSITIVE:
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
            if selection.strategy is not None and selection.strategy not in {
                    c.name for c in candidates}:
                raise _fault("selector", opts["selector"].partition(":")[0].strip(),
                             f"chose {selection.strategy!r}, which is not among the candidates "
                             f"({', '.join(c.name for c in candidates)})")
            clock.lap("select")
            heatmaps = None
            if selection.strategy is not None:
                raw = check_heatmap(
                    strategies[selection.strategy].heatmap(map_p[i], map_g[i], mask_p[i],
                                                           mask_g[i]),
                    selection.strategy, map_p[i].shape)
                smooth = kernels.smooth_heatmap(
                    raw, dilate_size=opts["dilate_size"],
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
                faces=faces_uint8(torch.stack([probes[i], galleries[i]])),
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


__all__: Sequence[str] = ["PaperExplainer", "embed_in_chunks", "fill_images"]
