"""Heatmap overlay (paper Sec. 3.1): the heatmap through a JET colour map, blended over the
face's luminance, warmer colours marking the regions that matter more."""

from __future__ import annotations

import numpy as np


def luminance(face: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of an ``(H, W, 3)`` uint8 RGB face, float in [0, 1]."""
    f = np.asarray(face, dtype=np.float32) / 255.0
    luma: np.ndarray = f[..., 0] * 0.299 + f[..., 1] * 0.587 + f[..., 2] * 0.114
    return luma


def overlay(face: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``(H, W, 3)`` uint8: ``alpha * JET(heatmap) + (1 - alpha) * luminance(face)``."""
    from matplotlib import colormaps

    face = np.asarray(face)
    heat = np.asarray(heatmap, dtype=np.float32)
    if face.ndim != 3 or face.shape[2] != 3:
        raise ValueError(f"face must be (H, W, 3), got {face.shape}")
    if heat.shape != face.shape[:2]:
        raise ValueError(f"heatmap shape {heat.shape} differs from the face's {face.shape[:2]}")
    if not np.isfinite(heat).all():
        raise ValueError("heatmap contains NaN or infinite values")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    jet = colormaps["jet"](np.clip(heat, 0.0, 1.0))[..., :3]
    gray = luminance(face)[..., None]
    out = alpha * jet + (1 - alpha) * gray
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)
