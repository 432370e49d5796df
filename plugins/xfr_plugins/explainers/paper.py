"""The paper's explainer (Correia et al., Sec. 3, Fig. 1), for positive AND negative decisions.

The explainer is given its parts: an attention generator, the candidate mask strategies of
each decision, a selector and the smoothing (:class:`PaperExplainer`). The registry builds it
from names (:meth:`PaperExplainer.from_options`, the ``paper`` factory): the parts come from
the registry that builds the explainer (docs/design.md, "The paper explainer").

Per batch of pairs it runs the steps of Sec. 3, one method each, one batched model call per
step:

1. :meth:`~PaperExplainer.decide` (Sec. 3.1): both faces' embeddings, distance vs. threshold
   -> the decision;
2. :meth:`~PaperExplainer.attend` (Sec. 3.1): the generator's attention maps of all faces
   (default No-Grad ViT-LRP, the paper's best) and their Otsu masks;
3. :meth:`~PaperExplainer.candidates` (Sec. 3.2-3.3): each strategy's mask (positive: OIM, UM;
   negative: OIM, UM, N-IUM) removed from both faces, the masked faces through the verifier
   (positive: the PP pair = probe + masked gallery and the PG pair = gallery + masked probe;
   negative: the NPG pair = masked probe + masked gallery);
4. :meth:`~PaperExplainer.select` (eq. 1-2): the selector scores the candidates (SM+, SM-, or
   a fixed strategy) and picks one;
5. :meth:`~PaperExplainer.smooth` (Sec. 3.1): the chosen strategy's heatmap values, 8x8
   elliptical dilation and the 56x56 Gaussian of sigma 56/8.5 (the authors' kernel).

The same mask is removed from both faces (eq. 1-2; docs/method.md), so the final heatmap is one
map of the pair, drawn on both faces: ``Explanation.heatmaps[0]`` (probe) and ``[1]``
(gallery) are equal. The wall time of each step goes to ``notes["seconds_per_pair"]``
(stages ``embed``, ``attention``, ``otsu``, ``masked_embed``, ``select``, ``smooth``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np
import torch

from xfr.errors import OptionError, OptionTypeError, PluginOutputError
from xfr.explanation import Candidate, Explanation
from xfr.interfaces.images import check_face_pairs, faces_uint8
from xfr.interfaces.selector import Selection
from xfr.interfaces.vocabulary import (
    BEST_STRATEGY,
    DECISIONS,
    DILATE_SIZE,
    GAUSSIAN_SIGMA,
    GAUSSIAN_SIZE,
    POSITIVE,
    Decision,
    decide,
)
from xfr.options import Options, option, unknown_options
from xfr.registry import KIND_WORDS
from xfr_plugins.explainers.options import (
    DEFAULT_STRATEGIES,
    FILLS,
    Fill,
    GaussianCentre,
    PaperOptions,
)

if TYPE_CHECKING:
    from xfr.interfaces.attention import AttentionGenerator, AttentionTarget
    from xfr.interfaces.mask_strategy import MaskStrategy
    from xfr.interfaces.selector import Selector
    from xfr.registry import Registry

__all__ = [
    "DEFAULT_STRATEGIES",
    "Attended",
    "Decided",
    "PaperExplainer",
    "PaperOptions",
    "Smoothing",
    "StageClock",
    "embed_in_chunks",
    "fill_images",
    "fixed_strategy",
    "strategy_names",
]

#: The options that name parts: changing one of them per call rebuilds the parts in the
#: registry that built the explainer.
PART_OPTIONS = frozenset({"generator", "generator_options", "strategies", "selector"})


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


def fixed_strategy(selector: str) -> str | None:
    """The strategy a ``fixed:NAME`` selector spec names (``"fixed"`` alone: ``"oim"``, the
    paper's conclusion, :data:`~xfr.interfaces.vocabulary.BEST_STRATEGY`)."""
    name, _, argument = selector.partition(":")
    if name.strip() != "fixed":
        return None
    return argument.strip() or BEST_STRATEGY


def strategy_names(options: PaperOptions) -> dict[Decision, tuple[str, ...]]:
    """The candidate strategies of each decision that ``options`` name: ``strategies`` (or the
    paper's, Sec. 3.2-3.3), and the strategy of a ``fixed:NAME`` selector, which becomes a
    candidate (docs/hooks.md: a third-party strategy is selected by naming it)."""
    chosen = cast("dict[Decision, tuple[str, ...]] | None", options.strategies)  # normalised
    fixed = fixed_strategy(options.selector)
    out: dict[Decision, tuple[str, ...]] = {}
    for decision in DECISIONS:
        names = DEFAULT_STRATEGIES[decision] if chosen is None else chosen[decision]
        if fixed is not None and fixed not in names:
            names = (*names, fixed)
        out[decision] = names
    return out


def _spec_name(spec: str) -> str:
    return spec.partition(":")[0].strip()


def _as_numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return value


#: Builds the error for a plugin's output that breaks its contract, from what is wrong.
Fault = Callable[[str], PluginOutputError]


def check_strategy(strategy: Any, fault: Fault) -> Any:
    """A mask strategy with ``combine``, ``heatmap`` and ``decisions`` (a subset of
    positive/negative), else :class:`~xfr.errors.PluginOutputError` naming the plugin."""
    for method in ("combine", "heatmap"):
        if not callable(getattr(strategy, method, None)):
            raise fault(f"the built object has no {method}() method "
                        "(docs/hooks.md, xfr_mask_strategies)")
    decisions = getattr(strategy, "decisions", None)
    if (isinstance(decisions, str) or not isinstance(decisions, (set, frozenset, list, tuple))
            or not set(decisions) <= set(DECISIONS)):
        raise fault(f"decisions must be a set of 'positive'/'negative', got {decisions!r}")
    return strategy


def check_mask(value: Any, shape: tuple[int, ...], fault: Fault) -> np.ndarray:
    """``combine``'s output as a bool array of ``shape``: bool, or numbers that are all 0 or 1;
    NaN, other values or another shape raise :class:`~xfr.errors.PluginOutputError`."""
    a = _as_numpy(value)
    if not isinstance(a, np.ndarray):
        raise fault(f"combine returned {type(a).__name__}, expected an array")
    if a.shape != shape:
        raise fault(f"combine returned shape {a.shape}, expected {shape}")
    if a.dtype == np.bool_:
        return a
    if not np.issubdtype(a.dtype, np.number):
        raise fault(f"combine returned dtype {a.dtype}, expected bool")
    if not np.isfinite(a).all():
        raise fault("combine returned NaN or infinite values (a mask must be True/False; NaN "
                    "would remove the whole face)")
    if not np.isin(a, (0, 1)).all():
        raise fault(f"combine returned values other than 0/1 "
                    f"({float(a.min()):g}..{float(a.max()):g}), expected a bool mask")
    return a.astype(bool)


def check_heatmap(value: Any, shape: tuple[int, ...], fault: Fault) -> np.ndarray:
    """``heatmap``'s output as float32 of ``shape``, finite, else
    :class:`~xfr.errors.PluginOutputError`."""
    a = _as_numpy(value)
    if not isinstance(a, np.ndarray) or not (np.issubdtype(a.dtype, np.number)
                                             or a.dtype == np.bool_):
        raise fault(f"heatmap returned {type(a).__name__}, expected a float array")
    if a.shape != shape:
        raise fault(f"heatmap returned shape {a.shape}, expected {shape}")
    if not np.isfinite(a).all():
        raise fault("heatmap returned NaN or infinite values")
    return np.ascontiguousarray(a, dtype=np.float32)


# --------------------------------------------------------------------------- the parts


@dataclass(frozen=True)
class Smoothing(Options):
    """The smoothing of the chosen strategy's heatmap (paper Sec. 3.1): min-max, an
    elliptical dilation, a Gaussian, min-max (:func:`xfr.kernels.smooth_heatmap`)."""

    owner: ClassVar[str] = "smoothing"

    dilate_size: int | tuple[int, int] = option(
        DILATE_SIZE, help="side of the elliptical dilation, or (width, height)", low=1)
    gaussian_size: int = option(GAUSSIAN_SIZE, help="side of the Gaussian filter", low=1)
    sigma: float = option(GAUSSIAN_SIGMA, help="its sigma", low=0, low_open=True)
    centre: GaussianCentre = option("authors", help="the authors' kernel (peak on tap 27 of "
                                    "56) or OpenCV's symmetric one")

    @classmethod
    def of(cls, options: PaperOptions) -> Smoothing:
        """The smoothing that the paper explainer's ``options`` give."""
        return cls(options.dilate_size, options.gaussian_size, options.sigma,
                   options.gaussian_centre)

    def __call__(self, heatmap: np.ndarray) -> np.ndarray:
        """The smoothed ``(H, W)`` float32 heatmap in [0, 1]."""
        from xfr import kernels

        smooth = kernels.smooth_heatmap(heatmap, dilate_size=self.dilate_size,
                                        gaussian_size=self.gaussian_size, sigma=self.sigma,
                                        centre=self.centre)
        return np.asarray(smooth, dtype=np.float32)

    def notes(self) -> dict[str, Any]:
        """How ``Explanation.notes["smoothing"]`` records it."""
        return {"dilate_size": self.dilate_size, "gaussian_size": self.gaussian_size,
                "sigma": self.sigma, "gaussian_centre": self.centre}


@dataclass
class Decided:
    """Step 1 (Sec. 3.1): the faces of a batch of N pairs, their embeddings and decisions."""

    #: Probes then galleries, ``(2N, 3, S, S)`` float.
    faces: torch.Tensor
    #: Their embeddings, ``(2N, D)``.
    embeddings: torch.Tensor
    #: The pairs' distances, ``(N,)`` float64.
    distances: np.ndarray
    threshold: float
    decisions: list[Decision]

    @property
    def n(self) -> int:
        return len(self.decisions)

    @property
    def probe_embeddings(self) -> torch.Tensor:
        return self.embeddings[: self.n]

    @property
    def gallery_embeddings(self) -> torch.Tensor:
        return self.embeddings[self.n :]


@dataclass
class Attended:
    """Step 2 (Sec. 3.1): attention maps of all faces and their Otsu masks."""

    #: ``(2N, H, W)`` float32 in [0, 1]: probes then galleries.
    maps: np.ndarray
    #: ``(2N, H, W)`` bool, ``True`` = salient (Otsu's threshold of each map).
    masks: np.ndarray
    #: What the maps explain on this verifier (``"auto"`` resolved).
    target: str

    def pair(self, i: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Probe map, gallery map, probe mask, gallery mask of pair ``i`` of ``n``."""
        return self.maps[i], self.maps[n + i], self.masks[i], self.masks[n + i]


class StageClock:
    """Wall time per pipeline stage (shared by the pairs of one batch): each step of
    :class:`PaperExplainer` given one calls :meth:`lap` with its stage's name when done."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._last
        self._last = now

    def per_pair(self, n: int) -> dict[str, float]:
        return {k: v / n for k, v in self.seconds.items()}


# --------------------------------------------------------------------------- the explainer


class PaperExplainer:
    """Attention maps + mask strategies + selection metric (paper Sec. 3), given its parts.

    ``generator``: an :class:`~xfr.interfaces.AttentionGenerator`; ``strategies``: the
    candidates of each decision, ``{"positive": {name: MaskStrategy}, "negative": {...}}``
    (a name is one strategy: the same name means the same mask in both decisions);
    ``selector``: a :class:`~xfr.interfaces.Selector`; ``smoothing``: :class:`Smoothing`
    (default the paper's). ``target``: what the maps explain (``"auto"``, ``"logit"``,
    ``"embedding"``, ``"similarity"``: the other face's embedding); ``fill``: what removed
    pixels become (``"zeros"``, ``"mean"``, ``"blur"``); ``batch_size``: images per verifier
    call.

    ``registry`` and ``options`` are set by :meth:`from_options`, which builds the parts from
    names: the registry they came from (it names plugins in error messages and builds new
    parts when ``explain_pairs`` is given part options) and the named options, recorded in
    ``notes`` and in :attr:`options`.
    """

    name = "paper"

    def __init__(self, generator: AttentionGenerator,
                 strategies: Mapping[Decision, Mapping[str, MaskStrategy]],
                 selector: Selector, smoothing: Smoothing | None = None, *,
                 target: AttentionTarget = "auto", fill: Fill = "zeros", batch_size: int = 256,
                 registry: Registry | None = None, options: PaperOptions | None = None) -> None:
        smoothing = Smoothing() if smoothing is None else smoothing
        if not isinstance(smoothing, Smoothing):
            raise OptionTypeError(f"paper: smoothing must be a Smoothing, got {smoothing!r}")
        if not isinstance(strategies, Mapping) or set(strategies) != set(DECISIONS):
            raise OptionError(f"paper: strategies must map both 'positive' and 'negative' to "
                              f"their candidates, got {strategies!r}")
        self.registry = registry
        self.generator = generator
        self.selector = selector
        self.smoothing = smoothing
        self.strategies: dict[Decision, dict[str, MaskStrategy]] = {}
        for decision in DECISIONS:
            given = strategies[decision]
            if not isinstance(given, Mapping) or not given:
                raise OptionError(f"paper: strategies[{decision!r}] must map at least one "
                                  f"name to a mask strategy, got {given!r}")
            self.strategies[decision] = {
                s: check_strategy(obj, self._fault("mask", s)) for s, obj in given.items()}
        # target, fill and batch_size are checked by their declaration
        own = {"target": target, "fill": fill, "batch_size": batch_size}
        checked = PaperOptions.parse(own)
        self.target, self.fill, self.batch_size = checked.target, checked.fill, batch_size
        self.spec = options

    # -- building from names ----------------------------------------------------------------
    @classmethod
    def from_options(cls, registry: Registry, options: PaperOptions | None = None,
                     **changes: Any) -> PaperExplainer:
        """The explainer that the named options give (:class:`PaperOptions`: ``options``, or
        the defaults, with ``changes``), its parts built by ``registry``; unknown names fail
        here with the names ``registry`` knows."""
        spec = PaperOptions.parse(changes, base=options)
        generator = registry.create("attention", spec.generator, **spec.generator_options)
        built = {s: registry.create("mask", s)
                 for names in strategy_names(spec).values() for s in names}
        strategies = {d: {s: built[s] for s in names}
                      for d, names in strategy_names(spec).items()}
        selector = registry.create("selector", spec.selector)
        return cls(generator, strategies, selector, Smoothing.of(spec), target=spec.target,
                   fill=spec.fill, batch_size=spec.batch_size, registry=registry, options=spec)

    @property
    def options(self) -> dict[str, Any]:
        """The named options (:class:`PaperOptions`) this explainer was built from; for one
        given its parts, their names (``name`` attributes) and its settings."""
        if self.spec is not None:
            return self.spec.as_dict()
        return {"generator": self._label(self.generator), "generator_options": {},
                "target": self.target,
                "strategies": {d: tuple(self.strategies[d]) for d in DECISIONS},
                "selector": self._label(self.selector), "fill": self.fill,
                "dilate_size": self.smoothing.dilate_size,
                "gaussian_size": self.smoothing.gaussian_size, "sigma": self.smoothing.sigma,
                "gaussian_centre": self.smoothing.centre, "batch_size": self.batch_size}

    def with_options(self, **changes: Any) -> PaperExplainer:
        """This explainer with some of its named options changed. Options that name parts
        (``generator``, ``generator_options``, ``strategies``, ``selector``) are built in the
        registry that built this explainer; one given its parts without a registry can change
        the others only."""
        if self.registry is not None and self.spec is not None:
            return self.from_options(self.registry, self.spec, **changes)
        unknown = set(changes) - set(PaperOptions.names())
        if unknown:
            raise unknown_options(PaperOptions.owner, unknown, PaperOptions.names())
        parts = sorted(PART_OPTIONS & set(changes))
        if parts:
            raise OptionTypeError(
                f"paper: {', '.join(parts)} cannot change per call: this explainer was given "
                "its parts without a registry (build it with registry.create('explainer', "
                "'paper', ...) or PaperExplainer.from_options)")
        current = self.options
        changed = PaperOptions.parse({k: current[k] for k in set(current) - PART_OPTIONS}
                                     | changes)
        return PaperExplainer(self.generator, self.strategies, self.selector,
                              Smoothing.of(changed), target=changed.target, fill=changed.fill,
                              batch_size=changed.batch_size)

    # -- the contract -----------------------------------------------------------------------
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
        """Explain N pairs ``(N, 3, S, S)`` (0..255 RGB): the steps of Sec. 3, each once per
        batch. ``options`` change the named options for this call (:meth:`with_options`)."""
        if options:
            return self.with_options(**options).explain_pairs(verifier, probes, galleries)
        probes, galleries = check_face_pairs(
            probes, galleries, getattr(verifier, "input_size", None))
        self.check_verifier(verifier)
        clock = StageClock()
        decided = self.decide(verifier, probes.float(), galleries.float(), clock)
        attended = self.attend(verifier, decided, clock)
        candidates = self.candidates(verifier, decided, attended, clock)
        results = []
        for i in range(decided.n):
            selection = self.select(decided, i, candidates[i], clock)
            heatmaps = self.smooth(selection.strategy, attended.pair(i, decided.n), clock)
            results.append(self._explanation(verifier, decided, attended, i, candidates[i],
                                             selection, heatmaps))
        timings = clock.per_pair(decided.n)
        for r in results:
            r.notes["seconds_per_pair"] = timings
        return results

    # -- the steps of Sec. 3 ----------------------------------------------------------------
    def decide(self, verifier: Any, probes: torch.Tensor, galleries: torch.Tensor,
               clock: StageClock | None = None) -> Decided:
        """Step 1 (Sec. 3.1): embed both faces of every pair in one pass; the decision is
        positive when the distance is below the verifier's threshold."""
        faces = torch.cat([probes, galleries])
        n = probes.shape[0]
        embeddings = embed_in_chunks(verifier, faces, self.batch_size)
        distances = verifier.distance(embeddings[:n], embeddings[n:]).double().cpu().numpy()
        threshold = float(verifier.threshold)
        decided = Decided(faces, embeddings, distances, threshold,
                          [decide(d, threshold) for d in distances])
        if clock is not None:
            clock.lap("embed")
        return decided

    def attend(self, verifier: Any, decided: Decided,
               clock: StageClock | None = None) -> Attended:
        """Step 2 (Sec. 3.1): the generator's attention map of every face (one call), checked,
        and each map's Otsu mask (:func:`xfr.kernels.otsu`)."""
        from xfr import kernels
        from xfr_plugins.attention.targets import resolve_target

        faces = decided.faces
        # the other face's embedding is the reference of the "similarity" target
        reference = (torch.cat([decided.gallery_embeddings, decided.probe_embeddings])
                     if self.target == "similarity" else None)
        # what "auto" resolves to on this verifier, as the generators resolve it
        target = resolve_target(verifier, decided.probe_embeddings[:1], self.target)
        given = self.generator(verifier, faces, target=self.target, reference=reference)
        maps = np.ascontiguousarray(_as_numpy(given), dtype=np.float32)
        fault = self._fault("attention", self._generator_name())
        expected = (faces.shape[0], *faces.shape[-2:])
        if maps.shape != expected:
            raise fault(f"returned maps of shape {maps.shape}, expected {expected}")
        if not np.isfinite(maps).all():
            raise fault("returned NaN or infinite values")
        if clock is not None:
            clock.lap("attention")
        _, otsu = kernels.otsu(maps)
        attended = Attended(maps, np.asarray(otsu, dtype=bool), target)
        if clock is not None:
            clock.lap("otsu")
        return attended

    def candidates(self, verifier: Any, decided: Decided, attended: Attended,
                   clock: StageClock | None = None) -> list[list[Candidate]]:
        """Step 3 (Sec. 3.2-3.3): for every pair and every strategy of its decision, the
        strategy's mask removed from both faces; all masked faces through the verifier in one
        pass (a positive pair's faces are not masked by a negative-only strategy); per pair, one
        :class:`~xfr.explanation.Candidate` per strategy of its decision with the removed area
        and the distances of eq. 1 (``pg``, ``pp``) or eq. 2 (``npg``)."""
        n, faces = decided.n, decided.faces
        mask_p, mask_g = attended.masks[:n], attended.masks[n:]
        present = [d for d in DECISIONS if d in decided.decisions]
        objects = {s: obj for d in present for s, obj in self.strategies[d].items()}
        names = list(dict.fromkeys(s for d in present for s in self.strategies[d]))
        masks = {s: check_mask(objects[s].combine(mask_p, mask_g), mask_p.shape,
                               self._fault("mask", s)) for s in names}
        fill = fill_images(faces, self.fill)
        # only the pairs whose decision has the strategy: both faces of each, masked
        needs = {s: [i for i, d in enumerate(decided.decisions) if s in self.strategies[d]]
                 for s in names}
        masked = []
        for s in names:
            rows = needs[s] + [n + i for i in needs[s]]  # probes, then galleries
            m = torch.from_numpy(masks[s][needs[s] * 2]).to(faces.device)[:, None]
            m = m.to(faces.dtype)
            masked.append(faces[rows] * (1 - m) + fill[rows] * m)
        emb = (embed_in_chunks(verifier, torch.cat(masked), self.batch_size) if names
               else decided.embeddings[:0])
        # per strategy: pair i -> (masked probe, masked gallery) embeddings
        per_strategy = {
            s: {i: (block[j:j + 1], block[len(needs[s]) + j:len(needs[s]) + j + 1])
                for j, i in enumerate(needs[s])}
            for s, block in zip(names, emb.split([2 * len(needs[s]) for s in names]),
                                strict=True)}
        if clock is not None:
            clock.lap("masked_embed")
        e_p, e_g = decided.probe_embeddings, decided.gallery_embeddings
        out: list[list[Candidate]] = []
        for i, decision in enumerate(decided.decisions):
            row = []
            for s, strategy in self.strategies[decision].items():
                mask = masks[s][i]
                e_mp, e_mg = per_strategy[s][i]
                if decision == POSITIVE:
                    dist = {"pg": float(verifier.distance(e_g[i : i + 1], e_mp)[0]),
                            "pp": float(verifier.distance(e_p[i : i + 1], e_mg)[0])}
                else:
                    dist = {"npg": float(verifier.distance(e_mp, e_mg)[0])}
                applies = decision in strategy.decisions
                row.append(Candidate(
                    name=s, mask=mask, removed_area=float(mask.mean()), distances=dist,
                    eligible=applies,
                    reason=None if applies else f"{s} does not explain {decision} decisions"))
            out.append(row)
        return out

    def select(self, decided: Decided, i: int, candidates: Sequence[Candidate],
               clock: StageClock | None = None) -> Selection:
        """Step 4 (eq. 1-2): the selector scores pair ``i``'s candidates and chooses one (or
        none, saying why); a choice outside the candidates is the selector's fault."""
        selection = self.selector.select(decided.decisions[i], float(decided.distances[i]),
                                         candidates)
        if selection.strategy is not None and selection.strategy not in {
                c.name for c in candidates}:
            raise self._fault("selector", self._selector_name())(
                f"chose {selection.strategy!r}, which is not among the candidates "
                f"({', '.join(c.name for c in candidates)})")
        if clock is not None:
            clock.lap("select")
        return selection

    def smooth(self, strategy: str | None,
               pair: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
               clock: StageClock | None = None) -> np.ndarray | None:
        """Step 5 (Sec. 3.1): the chosen ``strategy``'s heatmap values of one pair (its maps
        and masks, :meth:`Attended.pair`), smoothed; the same map for both faces, ``(2, H,
        W)``. ``None`` when no strategy was chosen."""
        heatmaps = None
        if strategy is not None:
            map_p, map_g, mask_p, mask_g = pair
            raw = check_heatmap(self._strategy(strategy).heatmap(map_p, map_g, mask_p, mask_g),
                                map_p.shape, self._fault("mask", strategy))
            smooth = self.smoothing(raw)
            heatmaps = np.stack([smooth, smooth])
        if clock is not None:
            clock.lap("smooth")
        return heatmaps

    # -- helpers ----------------------------------------------------------------------------
    def _explanation(self, verifier: Any, decided: Decided, attended: Attended, i: int,
                     candidates: list[Candidate], selection: Selection,
                     heatmaps: np.ndarray | None) -> Explanation:
        n = decided.n
        map_p, map_g, mask_p, mask_g = attended.pair(i, n)
        faces = faces_uint8(decided.faces[[i, n + i]])
        return Explanation(
            decision=decided.decisions[i], distance=float(decided.distances[i]),
            threshold=decided.threshold, method=self.name, heatmaps=heatmaps,
            attention_maps=np.stack([map_p, map_g]), masks=np.stack([mask_p, mask_g]),
            candidates=candidates, strategy=selection.strategy,
            selection_reason=selection.reason, faces=faces,
            notes={"generator": self._generator_spec(), "target": attended.target,
                   "selector": self._selector_spec(), "fill": self.fill,
                   "verifier": getattr(verifier, "name", type(verifier).__name__),
                   "smoothing": self.smoothing.notes()})

    def _strategy(self, name: str) -> MaskStrategy:
        for decision in DECISIONS:
            if name in self.strategies[decision]:
                return self.strategies[decision][name]
        raise KeyError(name)

    @staticmethod
    def _label(part: Any) -> str:
        return str(getattr(part, "name", type(part).__name__))

    def _generator_spec(self) -> str:
        return self.spec.generator if self.spec is not None else self._label(self.generator)

    def _selector_spec(self) -> str:
        return self.spec.selector if self.spec is not None else self._label(self.selector)

    def _generator_name(self) -> str:
        return _spec_name(self._generator_spec())

    def _selector_name(self) -> str:
        return _spec_name(self._selector_spec())

    def _fault(self, kind: str, name: str) -> Fault:
        """How an error about a part's output names the part: by the registry it came from
        (kind, name, package), else by kind and name."""
        def fault(what: str) -> PluginOutputError:
            who = (self.registry.describe(kind, name) if self.registry is not None
                   else f"{KIND_WORDS[kind]} {name!r}")
            return PluginOutputError(f"{who}: {what}")

        return fault

    def __repr__(self) -> str:
        return (f"PaperExplainer(generator={self.generator!r}, strategies="
                f"{ {d: list(s) for d, s in self.strategies.items()} }, "
                f"selector={self.selector!r}, smoothing={self.smoothing!r}, "
                f"target={self.target!r}, fill={self.fill!r}, batch_size={self.batch_size})")
