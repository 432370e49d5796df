"""A plain NumPy reference of every kernel of :mod:`xfr.kernels`, written from the definitions
(paper Sec. 3.1-3.3; docs/method.md, "Otsu masks", "Mask strategies" and "Smoothing"), for the
tests to hold the compiled and torch kernels against. Slow and obvious on purpose: Python loops
for Otsu, one shifted slice per structuring-element pixel, a direct 2-D correlation in float64.
"""

from __future__ import annotations

import math

import numpy as np

FLT_EPSILON = float(np.finfo(np.float32).eps)


def to_levels(maps: np.ndarray) -> np.ndarray:
    """``uint8(255 * map)``: float32 product, truncated (NumPy's astype)."""
    return (maps.astype(np.float32) * np.float32(255)).astype(np.uint8)


def otsu_level(levels: np.ndarray) -> int:
    """Otsu's level of one uint8 image: OpenCV's getThreshVal_Otsu_8u in Python floats."""
    h = np.bincount(levels.ravel(), minlength=256).astype(np.int64).tolist()
    scale = 1.0 / levels.size
    mu = 0.0
    for i in range(256):
        mu += i * float(h[i])
    mu *= scale
    mu1 = q1 = max_sigma = max_val = 0.0
    for i in range(256):
        p_i = h[i] * scale
        mu1 *= q1
        q1 += p_i
        q2 = 1.0 - q1
        if min(q1, q2) < FLT_EPSILON or max(q1, q2) > 1.0 - FLT_EPSILON:
            continue
        mu1 = (mu1 + i * p_i) / q1
        mu2 = (mu - q1 * mu1) / q2
        sigma = q1 * q2 * (mu1 - mu2) * (mu1 - mu2)
        if sigma > max_sigma:
            max_sigma, max_val = sigma, i
    return int(max_val)


def otsu(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image ``(t, levels > t)``."""
    levels = to_levels(maps)
    t = np.array([otsu_level(lv) for lv in levels], dtype=np.float32)
    return t, levels > t[:, None, None].astype(np.uint8)


def combine(a: np.ndarray, b: np.ndarray, op: str) -> np.ndarray:
    a, b = a.astype(bool), b.astype(bool)
    return {"and": a & b, "or": a | b, "xor": a ^ b}[op]


def combine_maps(a1, a2, b1, b2, op: str) -> np.ndarray:
    """"and": (B1 A1 + B2 A2) / 2 in B1 AND B2; "xor": B1 A1 + B2 A2 in B1 XOR B2; "or": sum."""
    b1, b2 = b1.astype(bool), b2.astype(bool)
    s = b1 * a1 + b2 * a2
    both = np.where(b1 & b2, s / 2, 0).astype(np.float32)
    one = np.where(b1 ^ b2, s, 0).astype(np.float32)
    return {"and": both, "xor": one, "or": both + one}[op]


def structuring_element(shape: str, width: int, height: int) -> np.ndarray:
    """bool [height, width] as cv2.getStructuringElement (ellipse rows rounded half-even)."""
    se = np.zeros((height, width), dtype=bool)
    if shape == "rect" or (width, height) == (1, 1):
        se[:] = True
        return se
    r, c = height // 2, width // 2
    for i in range(height):
        dy = i - r
        if abs(dy) <= r:
            dx = int(np.rint(c * math.sqrt((r * r - dy * dy) / (r * r)))) if r else 0
            se[i, max(c - dx, 0) : min(c + dx + 1, width)] = True
    return se


def dilate(maps: np.ndarray, width: int, height: int, shape: str) -> np.ndarray:
    """out[y, x] = max of maps[y + i - height // 2, x + j - width // 2] over the element's
    set (i, j) inside the image."""
    se = structuring_element(shape, width, height)
    n, h, w = maps.shape
    ax, ay = width // 2, height // 2
    padded = np.full((n, h + height - 1, w + width - 1), -np.inf, dtype=np.float32)
    padded[:, ay : ay + h, ax : ax + w] = maps
    out = np.full(maps.shape, -np.inf, dtype=np.float32)
    for i, j in zip(*np.nonzero(se), strict=True):
        np.maximum(out, padded[:, i : i + h, j : j + w], out=out)
    return out


def gaussian_kernel_2d(size: int, sigma: float) -> np.ndarray:
    """exp(-(x^2 + y^2) / (2 sigma^2)) about the kernel's centre, normalised to sum 1."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    k = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma * sigma))
    return k / k.sum()


def gaussian(maps: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """Direct 2-D correlation in float64, anchor size // 2, reflect-101 borders."""
    k = gaussian_kernel_2d(size, sigma)
    n, h, w = maps.shape
    a = size // 2
    padded = np.pad(maps.astype(np.float64), ((0, 0), (a, size - 1 - a), (a, size - 1 - a)),
                    mode="reflect")
    out = np.zeros((n, h, w), dtype=np.float64)
    for i in range(size):
        for j in range(size):
            out += k[i, j] * padded[:, i : i + h, j : j + w]
    return out


def min_max(x: np.ndarray) -> np.ndarray:
    """(x - min) / (max - min) per image; zeros for a constant image."""
    out = np.zeros_like(x)
    for i, img in enumerate(x):
        lo, hi = img.min(), img.max()
        if hi > lo:
            out[i] = (img - lo) / (hi - lo)
    return out


def smooth_heatmap(maps: np.ndarray, dilate_size: int, gaussian_size: int,
                   sigma: float) -> np.ndarray:
    x = min_max(maps.astype(np.float32))
    x = dilate(x, dilate_size, dilate_size, "ellipse")
    x = gaussian(x, gaussian_size, sigma)
    return min_max(x)


# ----------------------------------------------------------------------------------------------
# Test inputs: maps in [0, 1] of the kinds the kernels meet (or that stress them).

MAP_KINDS = ("uniform", "blobs", "quantised", "constant")


def random_maps(seed: int, kind: str, n: int, h: int, w: int) -> np.ndarray:
    """float32 [n, h, w] in [0, 1]: ``uniform`` noise, ``blobs`` (a coarse grid upsampled
    bilinearly and min-max normalised, like an attention map), ``quantised`` (2-5 levels: many
    ties) or ``constant``."""
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        return rng.random((n, h, w), dtype=np.float32)
    if kind == "constant":
        return np.full((n, h, w), rng.random(), dtype=np.float32)
    if kind == "quantised":
        q = int(rng.integers(2, 6))
        return (rng.integers(0, q, (n, h, w)) / (q - 1)).astype(np.float32)
    import cv2

    out = np.empty((n, h, w), dtype=np.float32)
    for i in range(n):
        g = int(rng.integers(2, 15))
        coarse = rng.random((g, g), dtype=np.float32)
        up = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
        out[i] = min_max(up[None])[0]
    return out
