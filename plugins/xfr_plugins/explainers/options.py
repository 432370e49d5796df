"""The options of the built-in explainers, each declared once (:mod:`xfr.options`;
``xfr plugins --options NAME`` prints them).

- :class:`PaperOptions`: the paper's explainer by names (Sec. 3): which attention generator,
  mask strategies and selector the registry builds, and the smoothing of Sec. 3.1.
- :class:`PerturbationOptions` and its subclasses: the perturbation baselines of Sec. 4
  (MinPlus, AVG, RISE, LIME), with the parameters their authors used (docs/method.md,
  "Perturbation baselines").

This module imports neither the explainers nor NumPy, so describing the options is cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

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

__all__ = [
    "DEFAULT_STRATEGIES",
    "FILLS",
    "GAUSSIAN_CENTRES",
    "AVGOptions",
    "Fill",
    "GaussianCentre",
    "LIMEOptions",
    "MinPlusOptions",
    "PaperOptions",
    "PerturbationOptions",
    "RISEOptions",
    "StrategyNames",
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
