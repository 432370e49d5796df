"""The mask-strategy contract (paper Sec. 3.2-3.3: OIM, UM, N-IUM)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

# Defined with the rest of the paper's vocabulary; importable from here as before.
from xfr.interfaces.vocabulary import Decision

__all__ = ["Decision", "MaskStrategy"]


@runtime_checkable
class MaskStrategy(Protocol):
    """Combines the probe's and the gallery's Otsu masks into one mask for both images.

    Arrays are batched: masks ``(N, H, W)`` bool, maps ``(N, H, W)`` float32 in [0, 1].
    """

    name: str
    #: The decisions this strategy may explain (N-IUM: negative only; the paper's strategies
    #: take theirs from :data:`xfr.interfaces.vocabulary.PAPER_STRATEGIES`).
    decisions: frozenset[Decision]

    def combine(self, mask_p: np.ndarray, mask_g: np.ndarray) -> np.ndarray:
        """The mask (``True`` = removed) applied to probe and gallery alike."""
        ...

    def heatmap(
        self, map_p: np.ndarray, map_g: np.ndarray, mask_p: np.ndarray, mask_g: np.ndarray
    ) -> np.ndarray:
        """Heatmap values inside the mask, zero outside (paper Sec. 3.2-3.3; docs/method.md,
        "Mask strategies")."""
        ...
