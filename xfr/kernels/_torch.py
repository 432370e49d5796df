"""The kernels of :mod:`xfr.kernels` in torch operations only, for tensors on any device.

Called by the facade with validated ``[N, H, W]`` tensors (float32 maps, bool / uint8 masks,
sizes that fit). Same definitions as the compiled kernels (``csrc/kernels.hpp``):

- Otsu replays OpenCV's double-precision recurrence level by level, vectorised over the
  batch, so thresholds and masks are identical, ties included.
- The Gaussian runs in float64 (no TF32 on GPUs, no float32 accumulation): within 1e-5 of the
  float32 compiled kernel.
- Dilation is a max over per-row spans of the structuring element (``max_pool2d`` over each
  span width), exact.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

FLT_EPSILON = 1.1920928955078125e-07  # C's FLT_EPSILON, as OpenCV compares it (in double)


def structuring_spans(shape: str, width: int, height: int) -> list[tuple[int, int]]:
    """Per row ``[begin, end)`` of ``cv2.getStructuringElement(shape, (width, height))``."""
    if shape == "rect" or (width == 1 and height == 1):
        return [(0, width)] * height
    r, c = height // 2, width // 2
    inv_r2 = 1.0 / (float(r) * r) if r else 0.0
    rows = []
    for i in range(height):
        dy = i - r
        j1 = j2 = 0
        if abs(dy) <= r:
            # saturate_cast<int>(double) is cvRound: round half to even, as Python's round().
            dx = round(c * math.sqrt((r * r - dy * dy) * inv_r2))
            j1, j2 = max(c - dx, 0), min(c + dx + 1, width)
        rows.append((j1, j2))
    return rows


def gaussian_taps(size: int, sigma: float, centre: str = "opencv") -> list[float]:
    """The float32 taps of ``xfr.kernels.gaussian_kernel`` (returned as Python floats)."""
    middle = centre == "opencv" or size % 2 == 1
    peak = (size - 1) * 0.5 if middle else float((size + 1) // 2 - 1)
    scale2x = -0.5 / (sigma * sigma)
    x0 = 0.5 if middle and size % 2 == 0 else 0.0
    t = [math.exp(scale2x * ((i - peak) ** 2 - x0 * x0)) for i in range(size)]
    s = 1.0 / sum(t)
    return torch.tensor([v * s for v in t], dtype=torch.float32).tolist()


@torch.no_grad()
def otsu(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n = maps.shape[0]
    if bool(((maps < 0) | (maps > 1)).any()):
        raise ValueError("maps has values outside [0, 1]: Otsu needs maps normalised to [0, 1]")
    levels = (maps * 255).to(torch.uint8)  # float32 product, truncation
    flat = levels.reshape(n, -1).long()
    hist = torch.zeros(n, 256, dtype=torch.int64, device=maps.device)
    hist.scatter_add_(1, flat, torch.ones_like(flat))
    h = hist.double()
    count = flat.shape[1]
    scale = 1.0 / count
    # sum_i i h[i] is an integer below 2^53: exact in any order.
    mu = (h * torch.arange(256, dtype=torch.float64, device=maps.device)).sum(1) * scale
    zeros = torch.zeros(n, dtype=torch.float64, device=maps.device)
    mu1, q1, max_sigma, max_val = zeros, zeros, zeros, zeros
    for i in range(256):  # OpenCV's getThreshVal_Otsu_8u, operation by operation
        p_i = h[:, i] * scale
        mu1 = mu1 * q1
        q1 = q1 + p_i
        q2 = 1.0 - q1
        skip = (torch.minimum(q1, q2) < FLT_EPSILON) | (torch.maximum(q1, q2) > 1.0 - FLT_EPSILON)
        new_mu1 = (mu1 + i * p_i) / q1
        mu2 = (mu - q1 * new_mu1) / q2
        sigma = q1 * q2 * (new_mu1 - mu2) * (new_mu1 - mu2)
        better = ~skip & (sigma > max_sigma)
        max_sigma = torch.where(better, sigma, max_sigma)
        max_val = torch.where(better, float(i), max_val)
        mu1 = torch.where(skip, mu1, new_mu1)
    masks = levels > max_val.to(torch.uint8)[:, None, None]
    return max_val.float(), masks


@torch.no_grad()
def combine(a: torch.Tensor, b: torch.Tensor, op: str) -> torch.Tensor:
    x, y = a.bool(), b.bool()
    if op == "and":
        return x & y
    if op == "or":
        return x | y
    return x ^ y


@torch.no_grad()
def combine_maps(
    map_p: torch.Tensor, map_g: torch.Tensor, mask_p: torch.Tensor, mask_g: torch.Tensor, op: str
) -> torch.Tensor:
    b1, b2 = mask_p.bool(), mask_g.bool()
    s = torch.where(b1, map_p, 0.0) + torch.where(b2, map_g, 0.0)  # B1 A1 + B2 A2
    both, one = b1 & b2, b1 ^ b2
    if op == "and":
        return torch.where(both, s / 2, 0.0)
    if op == "xor":
        return torch.where(one, s, 0.0)
    return torch.where(both, s / 2, torch.where(one, s, 0.0))


@torch.no_grad()
def dilate(maps: torch.Tensor, width: int, height: int, shape: str) -> torch.Tensor:
    n, h, w = maps.shape
    ax, ay = width // 2, height // 2
    padded = F.pad(maps[:, None], (ax, width - 1 - ax, ay, height - 1 - ay), value=-math.inf)
    by_width: dict[int, torch.Tensor] = {}
    out = None
    for i, (j1, j2) in enumerate(structuring_spans(shape, width, height)):
        span = j2 - j1
        if span <= 0:
            continue
        if span not in by_width:
            by_width[span] = padded if span == 1 else F.max_pool2d(padded, (1, span), stride=1)
        part = by_width[span][:, 0, i : i + h, j1 : j1 + w]
        out = part if out is None else torch.maximum(out, part)
    assert out is not None  # the anchor row is never empty
    return out.contiguous()


@torch.no_grad()
def gaussian(maps: torch.Tensor, size: int, sigma: float, centre: str = "opencv") -> torch.Tensor:
    a = size // 2
    g = torch.tensor(gaussian_taps(size, sigma, centre), dtype=torch.float64, device=maps.device)
    x = F.pad(maps[:, None].double(), (a, size - 1 - a, a, size - 1 - a), mode="reflect")
    x = F.conv2d(x, g.view(1, 1, 1, size))
    x = F.conv2d(x, g.view(1, 1, size, 1))
    return x[:, 0].float()


def _min_max(x: torch.Tensor) -> torch.Tensor:
    """(x - lo) / (hi - lo) per image, zeros where hi == lo; all terms halved first (exact) where
    hi - lo overflows float32, as the compiled kernel does."""
    lo = x.amin(dim=(1, 2), keepdim=True)
    hi = x.amax(dim=(1, 2), keepdim=True)
    flat = ~(hi > lo)
    half = torch.where(torch.isfinite(hi - lo), 1.0, 0.5)
    out = (x * half - lo * half) / torch.where(flat, 1.0, hi * half - lo * half)
    return torch.where(flat, 0.0, out)


@torch.no_grad()
def smooth_heatmap(
    maps: torch.Tensor, dilate_w: int, dilate_h: int, gaussian_size: int, sigma: float,
    centre: str = "opencv",
) -> torch.Tensor:
    x = _min_max(maps)
    x = dilate(x, dilate_w, dilate_h, "ellipse")
    x = gaussian(x, gaussian_size, sigma, centre)
    return _min_max(x)
