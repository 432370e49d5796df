"""From token scores to image-sized attention maps: 14x14 scores, bilinear upsampling to
112x112, min-max normalised (docs/method.md, "Attention generators").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["minmax", "to_image_maps"]


def minmax(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each map of ``(N, ...)`` to [0, 1].

    A constant map (span not above 1e-12 of its magnitude) has no most or least important
    region: it becomes all zeros, never NaN.
    """
    flat = maps.flatten(1)
    lo = flat.min(dim=1, keepdim=True).values
    hi = flat.max(dim=1, keepdim=True).values
    span = hi - lo
    scale = torch.maximum(hi.abs(), lo.abs()).clamp(min=1.0)
    flat_span = span > 1e-12 * scale
    out = torch.where(flat_span, (flat - lo) / torch.where(flat_span, span, 1.0), 0.0)
    return out.clamp_(0.0, 1.0).reshape(maps.shape)


def to_image_maps(
    scores: torch.Tensor, grid: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """Patch-token scores ``(N, rows*cols)`` -> ``(N, H, W)`` float32 maps in [0, 1].

    The ``rows x cols`` grid (row-major, as the patch tokens) is upsampled bilinearly
    (``align_corners=False``) to the image size and min-max normalised per image. Raises
    ``ValueError`` when a generator produced non-finite scores.
    """
    n = scores.shape[0]
    if scores.shape[1] != grid[0] * grid[1]:
        raise ValueError(f"{scores.shape[1]} patch scores for a {grid[0]}x{grid[1]} grid")
    scores = scores.detach().float()
    if not torch.isfinite(scores).all():
        raise ValueError("the attention scores contain NaN or infinite values")
    grid_maps = scores.reshape(n, 1, grid[0], grid[1])
    up = F.interpolate(grid_maps, size=size, mode="bilinear", align_corners=False)[:, 0]
    return minmax(up).contiguous()
