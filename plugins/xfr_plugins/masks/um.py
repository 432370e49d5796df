"""Unified Masking, UM (paper Sec. 3.2, also used for negative decisions, Sec. 3.3).

Mask = B1 OR B2: the regions salient in either attention map. Heatmap = the OIM values
((B1 A1 + B2 A2) / 2) where both masks agree plus the N-IUM values (B1 A1 + B2 A2) where only
one does ("when only one attention map contributes ... its value is directly used").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from xfr.interfaces.vocabulary import PAPER_STRATEGIES
from xfr_plugins.masks._base import KernelMaskStrategy

if TYPE_CHECKING:
    from xfr.interfaces.vocabulary import Decision
    from xfr.kernels import SetOperation

_PAPER = PAPER_STRATEGIES["um"]


class UnifiedMask(KernelMaskStrategy):
    """UM: union of the two Otsu masks."""

    name: ClassVar[str] = _PAPER.name
    decisions: ClassVar[frozenset[Decision]] = _PAPER.decisions
    #: UM is the union of the two masks (Sec. 3.2).
    operation: ClassVar[SetOperation] = "or"
