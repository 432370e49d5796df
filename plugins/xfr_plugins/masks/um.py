"""Unified Masking, UM (paper Sec. 3.2, also used for negative decisions, Sec. 3.3).

Mask = B1 OR B2: the regions salient in either attention map. Heatmap = the OIM values
((B1 A1 + B2 A2) / 2) where both masks agree plus the N-IUM values (B1 A1 + B2 A2) where only
one does ("when only one attention map contributes ... its value is directly used").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from xfr_plugins.masks._base import BOTH_DECISIONS, KernelMaskStrategy

if TYPE_CHECKING:
    from xfr.kernels import SetOperation, StrategyName


class UnifiedMask(KernelMaskStrategy):
    """UM: union of the two Otsu masks."""

    name: ClassVar[StrategyName] = "um"
    decisions: ClassVar[frozenset[str]] = BOTH_DECISIONS
    operation: ClassVar[SetOperation] = "or"
