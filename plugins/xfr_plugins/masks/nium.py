"""Non-Intersecting Unified Masking, N-IUM (paper Sec. 3.3): negative decisions only.

Mask = B1 XOR B2 (union minus intersection): the regions salient in only one of the two
attention maps, i.e. what tells the two faces apart. Heatmap = B1 A1 + B2 A2 inside the mask
(only one term is non-zero there), zero outside.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from xfr.interfaces.vocabulary import PAPER_STRATEGIES
from xfr_plugins.masks._base import KernelMaskStrategy

if TYPE_CHECKING:
    from xfr.interfaces.vocabulary import Decision
    from xfr.kernels import SetOperation

_PAPER = PAPER_STRATEGIES["nium"]


class NonIntersectingUnifiedMask(KernelMaskStrategy):
    """N-IUM: symmetric difference of the two Otsu masks; explains negative decisions only."""

    name: ClassVar[str] = _PAPER.name
    decisions: ClassVar[frozenset[Decision]] = _PAPER.decisions
    #: N-IUM is the symmetric difference, "the union minus the intersection" (Sec. 3.3).
    operation: ClassVar[SetOperation] = "xor"
