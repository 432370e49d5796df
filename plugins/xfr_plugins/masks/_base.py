"""What the three mask strategies of the paper share (Sec. 3.2-3.3).

A strategy combines the probe's and the gallery's Otsu masks B1, B2 (``True`` = salient) into
one mask applied to both faces, and takes the heatmap values inside that mask from the
normalised attention maps A1, A2 (docs/method.md, "Mask strategies"). The work is done by
:mod:`xfr.kernels` (imported on first use, so listing the plugins needs no compiled code).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    from xfr.kernels import SetOperation, StrategyName

BOTH_DECISIONS: frozenset[str] = frozenset({"positive", "negative"})


class KernelMaskStrategy:
    """A :class:`xfr.interfaces.MaskStrategy` backed by ``xfr.kernels.combine`` and
    ``xfr.kernels.strategy_heatmap``; subclasses set the three class attributes.

    Inputs are ``(N, H, W)`` or ``(H, W)``: bool masks, float32 maps in [0, 1], NumPy arrays or
    torch tensors; the kernels validate them and raise ``ValueError`` on bad shapes, dtypes or
    non-finite values.
    """

    #: Registered name, also the ``strategy`` argument of ``xfr.kernels.strategy_heatmap``.
    name: ClassVar[StrategyName]
    #: The decisions this strategy may explain.
    decisions: ClassVar[frozenset[str]]
    #: The set operation of ``xfr.kernels.combine``: ``"and"``, ``"or"`` or ``"xor"``.
    operation: ClassVar[SetOperation]

    def combine(self, mask_p: Any, mask_g: Any) -> np.ndarray:
        """The mask (``True`` = removed) applied to probe and gallery alike."""
        from xfr import kernels

        return kernels.combine(mask_p, mask_g, self.operation)

    def heatmap(self, map_p: Any, map_g: Any, mask_p: Any, mask_g: Any) -> np.ndarray:
        """Heatmap values inside :meth:`combine`'s mask, zero outside."""
        from xfr import kernels

        return kernels.strategy_heatmap(map_p, map_g, mask_p, mask_g, self.name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
