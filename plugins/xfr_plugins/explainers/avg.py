"""AVG (Mery & Morris, "On Black-Box Explanation for Face Verification", WACV 2022; [MM22]).

A perturbation baseline of the paper (Sec. 2). The saliency map is the average of the
*removal* map and the *aggregation* map (as the paper's authors ran it, Sec. 4): the Minus
and Plus procedures of :mod:`xfr_plugins.explainers.minplus` (same holes, grid, rounds, stop
rule, score, and the same negative-decision extension), and the map of each is the score change
at the position chosen in each round (``H1``). So

    AVG = (H1minus + H1plus) / 2, Gaussian-smoothed (nh, nh / 8.5), min-max normalised,

whereas MinPlus [Me22], the authors' later refinement, also adds the first-round maps ``H0``.
AVG costs exactly what MinPlus costs (it runs the same procedures).
"""

from __future__ import annotations

from typing import ClassVar

from xfr_plugins.explainers.minplus import MinPlusExplainer
from xfr_plugins.explainers.options import AVGOptions

__all__ = ["AVGExplainer"]


class AVGExplainer(MinPlusExplainer):
    """Average of the removal (Minus) and aggregation (Plus) maps [MM22]."""

    name = "avg"
    Options: ClassVar[type[AVGOptions]] = AVGOptions
    COMPONENTS: ClassVar[tuple[float, float, float, float]] = (0.0, 0.0, 0.5, 0.5)

    def _components_text(self) -> str:
        return "(H1minus + H1plus) / 2, Gaussian-smoothed, min-max"
