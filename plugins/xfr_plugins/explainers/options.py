"""The options of the built-in explainers, each declared once (:mod:`xfr.options`;
``xfr plugins --options NAME`` prints them).

- :class:`PaperOptions`: the paper's explainer by names (Sec. 3): which attention generator,
  mask strategies and selector the registry builds, and the smoothing of Sec. 3.1.
- :class:`PerturbationOptions` and its subclasses: the perturbation baselines of Sec. 4
  (MinPlus, AVG, RISE, LIME), with the parameters their authors used (docs/method.md,
  "Perturbation baselines").
- :class:`RelevanceExplainerOptions`: the pair's relevance maps (xfr's measured default,
  docs/faithfulness.md), some options per decision.
- :class:`XSSABOptions`, :class:`CorrRISEOptions`, :class:`BiLRPOptions`: the field's
  similarity explainers (docs/method.md, "Similarity explainers").

This module imports neither the explainers nor NumPy, so describing the options is cheap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args

from xfr.interfaces.attention import AttentionTarget
from xfr.interfaces.vocabulary import (
    DECISIONS,
    DILATE_SIZE,
    GAUSSIAN_SIGMA,
    GAUSSIAN_SIZE,
    Decision,
    paper_strategies,
)
from xfr.options import Options, option
from xfr_plugins.attention.options import PAPER_ALPHA, Precision

__all__ = [
    "CORRELATIONS",
    "DECISION_TARGET",
    "DEFAULT_STRATEGIES",
    "FILLS",
    "GAUSSIAN_CENTRES",
    "MASK_KINDS",
    "PAIRINGS",
    "AVGOptions",
    "BiLRPOptions",
    "CorrRISEOptions",
    "Correlation",
    "Fill",
    "GaussianCentre",
    "LIMEOptions",
    "MaskKind",
    "MinPlusOptions",
    "Pairing",
    "PaperOptions",
    "PerturbationOptions",
    "RISEOptions",
    "RelevanceExplainerOptions",
    "RelevanceTarget",
    "StrategyNames",
    "XSSABOptions",
]

#: What removed pixels become: zeros (the authors' code), the image's mean colour, or a strong
#: blur of the image.
Fill = Literal["zeros", "mean", "blur"]
FILLS: tuple[str, ...] = ("zeros", "mean", "blur")
#: Where the Gaussian's peak lies: the authors' kernel (tap 27 of 56) or OpenCV's symmetric one.
GaussianCentre = Literal["authors", "opencv"]
GAUSSIAN_CENTRES: tuple[str, ...] = ("authors", "opencv")
#: The ``strategies`` option: ``"oim,um"``, a list of names, or names per decision.
StrategyNames = str | Sequence[str] | Mapping[str, str | Sequence[str]] | None
#: The candidates of each decision unless ``strategies`` says otherwise: the paper's (OIM, UM
#: for a positive decision, Sec. 3.2; OIM, UM, N-IUM for a negative one, Sec. 3.3).
DEFAULT_STRATEGIES: dict[Decision, tuple[str, ...]] = {d: paper_strategies(d) for d in DECISIONS}


@dataclass(frozen=True)
class PaperOptions(Options):
    """The paper explainer by names (Sec. 3, Fig. 1). The registry that builds the explainer
    builds the parts these names give (``PaperExplainer.from_options``)."""

    owner: ClassVar[str] = "paper"

    generator: str = option(
        "nograd-lrp", help="attention generator (kind 'attention'; Sec. 3.1); default the "
        "paper's best, No-Grad ViT-LRP")
    generator_options: dict[str, Any] = option(
        factory=dict, help="options of the attention generator (xfr plugins --options NAME)")
    target: AttentionTarget = option(
        "auto", help="what the maps explain: the identity logit, the embedding, the "
        "similarity to the other face; auto: logit when the verifier has a head")
    strategies: StrategyNames = option(
        None, help="candidate mask strategies: 'oim,um', a list, or {'positive': ..., "
        "'negative': ...}; default OIM+UM (positive), OIM+UM+N-IUM (negative)")
    selector: str = option(
        "metric", help="selector: metric (SM+ eq. 1, SM- eq. 2) or fixed:NAME (NAME becomes "
        "a candidate)")
    fill: Fill = option("zeros", help="what removed pixels become: zeros (the authors'), the "
                        "face's mean colour, or a strong blur of it")
    dilate_size: int | tuple[int, int] = option(
        DILATE_SIZE, help="side of the elliptical dilation of the heatmap, or (width, height) "
        "(Sec. 3.1)", low=1)
    gaussian_size: int = option(GAUSSIAN_SIZE, help="side of the Gaussian filter that follows "
                                "(Sec. 3.1)", low=1)
    sigma: float = option(GAUSSIAN_SIGMA, help="its sigma (Sec. 3.1: 56 / 8.5)", low=0,
                          low_open=True)
    gaussian_centre: GaussianCentre = option(
        "authors", help="authors: the paper's authors' kernel (peak on tap 27 of 56); opencv: "
        "the symmetric kernel of cv2.getGaussianKernel")
    batch_size: int = option(256, help="images per verifier call (memory; never the result)",
                             low=1)

    def check(self) -> None:
        object.__setattr__(self, "strategies", self._normalised_strategies(self.strategies))

    def _normalised_strategies(self, value: Any) -> dict[Decision, tuple[str, ...]] | None:
        """``strategies`` as ``{decision: names}`` (``None``: the paper's defaults). A string
        or list applies to both decisions; a dict gives them per decision, a missing decision
        keeping its defaults (Sec. 3.2-3.3). Whether the names are registered is the
        registry's business (``PaperExplainer.from_options``)."""
        if value is None:
            return None
        if isinstance(value, Mapping):
            unknown = sorted(set(map(str, value)) - set(DECISIONS))
            if unknown:
                raise self.invalid("strategies", "names, or a dict with the keys 'positive' "
                                   f"and/or 'negative' (unknown: {', '.join(unknown)})", value)
            return {d: self._names(value[d], f"strategies[{d!r}]") if d in value
                    else DEFAULT_STRATEGIES[d] for d in DECISIONS}
        names = self._names(value, "strategies")
        return {d: names for d in DECISIONS}

    def _names(self, value: str | Sequence[str], what: str) -> tuple[str, ...]:
        """``"oim,um"`` or ``["oim", "um"]`` -> ``("oim", "um")``, without repeats."""
        if isinstance(value, str):
            names = tuple(s.strip() for s in value.split(",") if s.strip())
        else:
            names = tuple(s.strip() for s in value)
        if not names:
            raise self.invalid(what, "at least one mask strategy name", value)
        return tuple(dict.fromkeys(names))


# --------------------------------------------------------------------------- the baselines


@dataclass(frozen=True)
class PerturbationOptions(Options):
    """What every perturbation baseline takes (paper Sec. 4)."""

    batch_size: int = option(128, help="images per verifier call (memory; never the result)",
                             low=1)
    seed: int = option(0, help="seed of the random numbers (per image: default_rng([seed, "
                       "side]))", low=0)
    progress: bool = option(False, help="show a progress bar")
    explain_negative: bool = option(
        True, help="explain negative decisions with the method's extension; False: no heatmap "
        "for them, as the authors' tools (Sec. 4)")


@dataclass(frozen=True)
class MinPlusOptions(PerturbationOptions):
    """MinPlus [Me22], as its authors ran it."""

    owner: ClassVar[str] = "minplus"

    hole_size: int = option(161, help="nh: side of the Gaussian hole (pixels)", low=1)
    hole_sigma: float | None = option(None, help="its sigma; None: hole_size / 8.5", low=0,
                                      low_open=True)
    step: int = option(16, help="d: grid step of the hole centres", low=1)
    iterations: int = option(20, help="n: most rounds of each procedure", low=1)
    stop: float = option(0.01, help="th: Minus stops when the score falls to it, Plus when the "
                         "face's score exceeds the current one by no more", low=0)
    plus_start: Literal["noise", "black"] = option(
        "noise", help="Plus starts from noise (the authors' uint8(2 * rand)) or black")
    smooth_size: int | None = option(None, help="side of the Gaussian that smooths the map; "
                                     "None: hole_size", low=1)
    smooth_sigma: float | None = option(None, help="its sigma; None: smooth_size / 8.5",
                                        low=0, low_open=True)


@dataclass(frozen=True)
class AVGOptions(MinPlusOptions):
    """AVG [MM22]: the options of MinPlus, whose procedures it runs."""

    owner: ClassVar[str] = "avg"


@dataclass(frozen=True)
class RISEOptions(PerturbationOptions):
    """RISE [PDS18], as the paper's authors ran it."""

    owner: ClassVar[str] = "rise"

    n_masks: int = option(10000, help="random masks per explained image", low=1)
    p_keep: float = option(0.1, help="probability that a grid cell is kept", low=0, high=1,
                           low_open=True)
    grid: int = option(5, help="cells per side of the mask grid", low=1)
    map: Literal["auto", "decrease", "increase"] = option(
        "auto", help="auto: decrease for a positive decision, increase for a negative one")


@dataclass(frozen=True)
class LIMEOptions(PerturbationOptions):
    """LIME [RSG16], as the paper's authors ran it."""

    owner: ClassVar[str] = "lime"

    n_samples: int = option(500, help="perturbed samples per explained image", low=2)
    p_keep: float = option(0.5, help="probability that a superpixel is kept in a sample",
                           low=0, high=1, low_open=True)
    kernel_width: float = option(0.25, help="width of the exponential kernel on the cosine "
                                 "distance to the unperturbed face", low=0, low_open=True)
    top_k: int = option(16, help="superpixels in the explanation", low=1)
    kernel_size: float = option(3, help="quickshift kernel_size", low=0, low_open=True)
    max_dist: float = option(200, help="quickshift max_dist", low=0, low_open=True)
    ratio: float = option(0.2, help="quickshift ratio", low=0, high=1)


# --------------------------------------------------------------------------- relevance


#: How the relevance explainer turns the two faces' maps into the pair's heatmaps: each face
#: keeps its own map, or both get the mean of the two (min-max normalised) maps.
Pairing = Literal["own", "mean"]
PAIRINGS: tuple[str, ...] = get_args(Pairing)
#: The relevance explainer's own target: the similarity for a positive decision, the
#: dissimilarity for a negative one.
DECISION_TARGET: Literal["decision"] = "decision"
#: What the relevance explainer's maps explain: its own target or a generator's.
RelevanceTarget = Literal["decision", AttentionTarget]


@dataclass(frozen=True)
class RelevanceExplainerOptions(Options):
    """The relevance explainer (xfr's default; docs/faithfulness.md): the configuration chosen
    by measurement. ``pairing`` and ``sigma`` are one value for both decisions or one per
    decision (``{"positive": ..., "negative": ...}``, both given); checked, they are always
    per decision."""

    owner: ClassVar[str] = "relevance"

    generator: str = option("grad-rollout", help="attention generator (kind 'attention'; "
                            "built in the registry that builds the explainer)")
    target: RelevanceTarget = option(
        DECISION_TARGET, help="decision: the similarity for a positive decision, the "
        "dissimilarity -cos for a negative one; or a generator target")
    pairing: Pairing | Mapping[Decision, Pairing] = option(
        factory=lambda: {"positive": "own", "negative": "mean"},
        help="own: each face its own map; mean: the mean of both maps on both faces (one "
        "value, or one per decision)")
    sigma: float | Mapping[Decision, float] = option(
        factory=lambda: {"positive": 4.0, "negative": 4.0},
        help="sigma of the Gaussian smoothing in pixels, 0: none (one value, or one per "
        "decision)", low=0)
    batch_size: int = option(32, help="pairs per model call (memory; never the result)", low=1)

    def check(self) -> None:
        object.__setattr__(self, "pairing", self._per_decision("pairing", self.pairing))
        sigma = self._per_decision("sigma", self.sigma)
        object.__setattr__(self, "sigma", {d: float(v) for d, v in sigma.items()})

    def _per_decision(self, name: str, value: Any) -> dict[Decision, Any]:
        """``value`` per decision: one value for both, or a dict that gives both (the defaults
        are per decision too, so a missing decision is an error)."""
        if not isinstance(value, Mapping):
            return {d: value for d in DECISIONS}
        missing = [d for d in DECISIONS if d not in value]
        if missing:
            raise self.invalid(name, "one value, or a dict {'positive': ..., 'negative': ...} "
                               f"(give a value for {missing[0]!r} too)", value)
        return {d: value[d] for d in DECISIONS}


# --------------------------------------------------------------------------- similarity


@dataclass(frozen=True)
class XSSABOptions(Options):
    """xSSAB (Huber et al., WACV 2024): no randomness, so no seed."""

    owner: ClassVar[str] = "xssab"

    batch_size: int = option(32, help="pairs per differentiated forward (memory; never the "
                             "result)", low=1)
    bound: Literal["threshold"] | float = option(
        "threshold", help="threshold: the authors' bound t / D (t: the verifier's threshold as "
        "a cosine); a number: the smallest argument e_m(x) e_m(x') that counts as positive")

    def check(self) -> None:
        if not isinstance(self.bound, str) and not math.isfinite(float(self.bound)):
            raise self.invalid("bound", "'threshold' or a finite number", self.bound)


#: CorrRISE's masks: black squares (the authors' script) or RISE's smooth grid masks.
MaskKind = Literal["patches", "rise"]
MASK_KINDS: tuple[str, ...] = get_args(MaskKind)
#: What CorrRISE correlates with the masks: the scores (Pearson) or their ranks (Spearman).
Correlation = Literal["pearson", "spearman"]
CORRELATIONS: tuple[str, ...] = get_args(Correlation)


@dataclass(frozen=True)
class CorrRISEOptions(Options):
    """CorrRISE (Lu et al., WACV 2024), with the settings of the authors' script."""

    owner: ClassVar[str] = "corrrise"

    batch_size: int = option(128, help="images per verifier call (memory; never the result)",
                             low=1)
    seed: int = option(0, help="seed of the masks' numpy Generator (the same masks for both "
                       "faces)", low=0)
    progress: bool = option(False, help="show a progress bar")
    n_masks: int = option(500, help="random masks per explained face", low=2)
    masks: MaskKind = option("patches", help="patches: black squares; rise: RISE's smooth grid "
                             "masks")
    patches: int = option(3, help="black squares per mask (masks='patches')", low=1)
    patch_size: int = option(30, help="their side in pixels (masks='patches')", low=1)
    grid: int = option(5, help="cells per side of the grid (masks='rise')", low=1)
    p_keep: float = option(0.1, help="probability that a grid cell is kept (masks='rise')",
                           low=0, high=1, low_open=True)
    correlation: Correlation = option("pearson", help="pearson: of the scores; spearman: of "
                                      "their ranks")


@dataclass(frozen=True)
class BiLRPOptions(Options):
    """BiLRP (Eberle et al., TPAMI 2022) on xfr's own LRP rules."""

    owner: ClassVar[str] = "bilrp"

    batch_size: int = option(128, help="relevance vectors (embedding coordinates) per "
                             "propagation (memory; never the result)", low=1)
    seed: int = option(0, help="seed of the random projection (dims=K)", low=0)
    dims: int | None = option(None, help="None: every embedding coordinate (exact); K: a "
                              "random projection to K coordinates", low=1)
    alpha: float = option(PAPER_ALPHA, help="alpha of the alpha-beta rule of the blocks (xfr's "
                          "LRP default; 1 is Chefer et al.'s)", low=0, low_open=True)
    precision: Precision = option(
        "float64", help="float64: a float64 copy of the verifier; model: the model's dtype")
