"""Only Intersection Masking, OIM (paper Sec. 3.2, also used for negative decisions, Sec. 3.3).

Mask = B1 AND B2: the regions salient in both the probe's and the gallery's attention maps.
Heatmap = (B1 A1 + B2 A2) / 2 inside the mask, i.e. the mean of the two attention maps there
("the average values of the attention maps for these shared regions"), zero outside. The
paper's conclusion (Sec. 4, Tab. 1) is that OIM is the best strategy for both decisions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from xfr.interfaces.vocabulary import PAPER_STRATEGIES
from xfr_plugins.masks._base import KernelMaskStrategy

if TYPE_CHECKING:
    from xfr.interfaces.vocabulary import Decision
    from xfr.kernels import SetOperation

_PAPER = PAPER_STRATEGIES["oim"]


class OnlyIntersectionMask(KernelMaskStrategy):
    """OIM: intersection of the two Otsu masks, mean of the two maps inside it."""

    name: ClassVar[str] = _PAPER.name
    decisions: ClassVar[frozenset[Decision]] = _PAPER.decisions
    #: OIM is the intersection of the two masks (Sec. 3.2).
    operation: ClassVar[SetOperation] = "and"
