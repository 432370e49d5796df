"""The paper's vocabulary, defined once (Correia et al., Sec. 3): the two decisions and the rule
that takes them, the mask strategies and the decisions each explains, and the smoothing of the
final heatmap.

Everything else in xfr and its built-in plugins takes these words from here; nothing below
imports NumPy or torch, so the module is cheap to import anywhere.

- Decision (Sec. 3.1): a pair is *positive* (same person) when the distance of its embeddings
  is below the verifier's threshold, else *negative* (:func:`decide`, :func:`is_positive`).
- Mask strategies (Sec. 3.2-3.3): OIM and UM explain both decisions, N-IUM negative decisions
  only (:data:`PAPER_STRATEGIES`). Which set operation of the two Otsu masks each one is
  (intersection, union, symmetric difference) is the business of the mask plugins
  (``xfr_plugins.masks``): the compiled kernels (:mod:`xfr.kernels`) know set operations only.
- Smoothing (Sec. 3.1): an 8x8 dilation, then a 56x56 Gaussian of sigma 56 / 8.5.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal, overload

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = [
    "BEST_STRATEGY",
    "DECISIONS",
    "DILATE_SIZE",
    "GAUSSIAN_SIGMA",
    "GAUSSIAN_SIGMA_DIVISOR",
    "GAUSSIAN_SIZE",
    "NEGATIVE",
    "PAPER_STRATEGIES",
    "POSITIVE",
    "Decision",
    "PaperStrategy",
    "decide",
    "is_positive",
    "paper_strategies",
    "strategy_label",
]

# ------------------------------------------------------------------------------ decisions

#: A verification decision: ``"positive"`` (same person) or ``"negative"`` (different people).
Decision = Literal["positive", "negative"]
#: The verifier accepts the pair: same person (Sec. 3.1).
POSITIVE: Final = "positive"
#: The verifier rejects the pair: different people (Sec. 3.1).
NEGATIVE: Final = "negative"
#: Both decisions, positive first (the paper's order).
DECISIONS: Final[tuple[Decision, Decision]] = (POSITIVE, NEGATIVE)

@overload
def is_positive(distance: float, threshold: float) -> bool: ...
@overload
def is_positive(distance: np.ndarray, threshold: float | np.ndarray) -> np.ndarray: ...
@overload
def is_positive(distance: torch.Tensor, threshold: float | torch.Tensor) -> torch.Tensor: ...


def is_positive(distance: Any, threshold: Any) -> Any:
    """Whether the verifier accepts the pair (paper Sec. 3.1): ``distance < threshold``.

    The one place xfr writes the decision rule. It works elementwise as well: for a NumPy array
    or a torch tensor of distances (and a threshold, or thresholds that broadcast) it returns
    a bool array or tensor of the same kind, for a float a bool. A distance equal to the
    threshold is negative, and so is NaN.
    """
    return distance < threshold


def decide(distance: float, threshold: float) -> Decision:
    """The decision on one pair (paper Sec. 3.1): :data:`POSITIVE` when
    :func:`is_positive` (``distance < threshold``), else :data:`NEGATIVE`."""
    return POSITIVE if is_positive(distance, threshold) else NEGATIVE


# ------------------------------------------------------------------------------ strategies


@dataclass(frozen=True)
class PaperStrategy:
    """One of the paper's mask strategies: its registered name, how the paper writes it, and
    the decisions it explains (Sec. 3.2-3.3)."""

    #: Registered name of the mask plugin (``xfr.registry.create("mask", name)``).
    name: str
    #: The paper's abbreviation (``"OIM"``, ``"UM"``, ``"N-IUM"``).
    label: str
    #: The paper's full name.
    title: str
    #: The decisions it explains.
    decisions: frozenset[Decision]
    #: Where the paper defines it.
    section: str


_BOTH: frozenset[Decision] = frozenset(DECISIONS)

#: The paper's mask strategies in its order: OIM and UM (Sec. 3.2, both decisions; Sec. 3.3
#: uses them for negative decisions too) and N-IUM (Sec. 3.3, negative decisions only).
PAPER_STRATEGIES: Final[Mapping[str, PaperStrategy]] = MappingProxyType({
    s.name: s for s in (
        PaperStrategy("oim", "OIM", "Only Intersection Masking", _BOTH, "3.2"),
        PaperStrategy("um", "UM", "Unified Masking", _BOTH, "3.2"),
        PaperStrategy("nium", "N-IUM", "Non-Intersecting Unified Masking",
                      frozenset({NEGATIVE}), "3.3"),
    )
})

#: The paper's conclusion (Sec. 4, Tab. 1): "OIM is the most effective masking technique for
#: both types of FV decision"; the ``fixed`` selector's strategy when none is named.
BEST_STRATEGY: Final = "oim"


def paper_strategies(decision: str) -> tuple[str, ...]:
    """The paper's strategies for ``decision``, in the paper's order: ``("oim", "um")`` for a
    positive decision (Sec. 3.2), ``("oim", "um", "nium")`` for a negative one (Sec. 3.3)."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be {POSITIVE!r} or {NEGATIVE!r}, got {decision!r}")
    return tuple(s.name for s in PAPER_STRATEGIES.values() if decision in s.decisions)


def strategy_label(name: str) -> str:
    """How the paper writes a strategy (``"nium"`` -> ``"N-IUM"``); other names unchanged."""
    s = PAPER_STRATEGIES.get(name)
    return name if s is None else s.label


# ------------------------------------------------------------------------------ smoothing

#: Side of the elliptical dilation of each final heatmap (Sec. 3.1: "an 8x8 dilation").
DILATE_SIZE: Final = 8
#: Side of the Gaussian filter that follows (Sec. 3.1: "a Gaussian filter of size 56x56").
GAUSSIAN_SIZE: Final = 56
#: The authors' code takes a Gaussian's sigma as its size divided by this (Mery's rule, used
#: by the perturbation baselines too).
GAUSSIAN_SIGMA_DIVISOR: Final = 8.5
#: Sigma of that Gaussian: 56 / 8.5, about 6.59 (the paper's "6.6 variance").
GAUSSIAN_SIGMA: Final = GAUSSIAN_SIZE / GAUSSIAN_SIGMA_DIVISOR
