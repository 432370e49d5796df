"""The ``probe-only`` mask strategy: remove only what the probe's attention map highlights.

Mask = B1 (the probe's Otsu mask), applied to both faces; heatmap = A1 inside it, zero outside.
A contrast to the paper's OIM (B1 AND B2) and UM (B1 OR B2), Sec. 3.2-3.3: it asks whether the
probe's own salient regions alone carry the decision.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _as_array(x: Any, what: str) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.ndim not in (2, 3):
        raise ValueError(f"{what} must be (H, W) or (N, H, W), got shape {a.shape}")
    return a


class ProbeOnlyMask:
    """Implements :class:`xfr.interfaces.MaskStrategy` for positive and negative decisions."""

    name = "probe-only"
    decisions: frozenset[str] = frozenset({"positive", "negative"})

    def combine(self, mask_p: Any, mask_g: Any) -> np.ndarray:
        """The probe's mask (``True`` = removed), for probe and gallery alike."""
        p = _as_array(mask_p, "mask_p")
        g = _as_array(mask_g, "mask_g")
        if p.shape != g.shape:
            raise ValueError(f"mask_p {p.shape} and mask_g {g.shape} differ in shape")
        return p.astype(bool, copy=True)

    def heatmap(self, map_p: Any, map_g: Any, mask_p: Any, mask_g: Any) -> np.ndarray:
        """The probe's attention values inside its mask, zero elsewhere (float32)."""
        mask = self.combine(mask_p, mask_g)
        a = _as_array(map_p, "map_p").astype(np.float32)
        if a.shape != mask.shape:
            raise ValueError(f"map_p {a.shape} and the masks {mask.shape} differ in shape")
        if not np.isfinite(a).all():
            raise ValueError("map_p contains NaN or infinite values")
        return np.where(mask, a, np.float32(0))
