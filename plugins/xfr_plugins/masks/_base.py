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
    from xfr.interfaces.vocabulary import Decision
    from xfr.kernels import SetOperation


class KernelMaskStrategy:
    """A :class:`xfr.interfaces.MaskStrategy` backed by ``xfr.kernels.combine`` and
    ``xfr.kernels.combine_maps``; subclasses set the three class attributes: the strategy's
    name and decisions from :data:`xfr.interfaces.vocabulary.PAPER_STRATEGIES`, and the set
    operation of the two Otsu masks that it is.

    Inputs are ``(N, H, W)`` or ``(H, W)``: bool masks, float32 maps in [0, 1], NumPy arrays or
    torch tensors; the kernels validate them and raise ``ValueError`` on bad shapes, dtypes or
    non-finite values.
    """

    #: Registered name.
    name: ClassVar[str]
    #: The decisions this strategy may explain.
    decisions: ClassVar[frozenset[Decision]]
    #: The set operation of ``xfr.kernels.combine`` and ``combine_maps``: ``"and"``
    #: (intersection), ``"or"`` (union) or ``"xor"`` (symmetric difference).
    operation: ClassVar[SetOperation]

    def combine(self, mask_p: Any, mask_g: Any) -> np.ndarray:
        """The mask (``True`` = removed) applied to probe and gallery alike."""
        from xfr import kernels

        return kernels.combine(mask_p, mask_g, self.operation)

    def heatmap(self, map_p: Any, map_g: Any, mask_p: Any, mask_g: Any) -> np.ndarray:
        """Heatmap values inside :meth:`combine`'s mask, zero outside."""
        from xfr import kernels

        return kernels.combine_maps(map_p, map_g, mask_p, mask_g, self.operation)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
