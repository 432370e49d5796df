"""xfr.kernels next to OpenCV and SciPy / scikit-image / NumPy doing the same work.

Every kernel of the paper's heatmap chain (Sec. 3.2-3.3) and the fused smoothing, on 112x112
and 224x224 attention-like maps, batch 1 and 256. Each benchmark first checks that its
implementation gives our result (so ``pytest benchmarks`` - benchmarks disabled by the
project's pytest options - is a test), then times it. OpenCV and SciPy loop over the batch,
as a user of those libraries would; OpenCV keeps its default thread count. Run:

    pytest benchmarks --benchmark-enable --benchmark-json=bench.json
    python benchmarks/ratios.py bench.json
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import pytest
import scipy.ndimage as ndi
from skimage.filters import threshold_otsu

from xfr import kernels

SIZES = (112, 224)
BATCHES = (1, 256)
DSIZE, GSIZE, SIGMA = kernels.PAPER_DILATE_SIZE, kernels.PAPER_GAUSSIAN_SIZE, kernels.PAPER_SIGMA
SE = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (DSIZE, DSIZE))
G1 = kernels.gaussian_kernel(GSIZE, SIGMA)
G2 = np.outer(G1, G1)
G1_64 = G1.astype(np.float64)


def attention_like(n: int, size: int, seed: int) -> np.ndarray:
    """Coarse 14x14 grids upsampled bilinearly and min-max normalised (like a ViT's maps)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size), dtype=np.float32)
    for i in range(n):
        up = cv2.resize(rng.random((14, 14), dtype=np.float32), (size, size))
        out[i] = (up - up.min()) / (up.max() - up.min())
    return out


_INPUTS: dict[tuple[int, int], dict[str, np.ndarray]] = {}


def inputs(size: int, batch: int) -> dict[str, np.ndarray]:
    key = (size, batch)
    if key not in _INPUTS:
        a1, a2 = attention_like(batch, size, 1), attention_like(batch, size, 2)
        _, b1 = kernels.otsu(a1)
        _, b2 = kernels.otsu(a2)
        _INPUTS.clear()  # keep one set in memory
        _INPUTS[key] = {"a1": a1, "a2": a2, "b1": b1, "b2": b2}
    return _INPUTS[key]


# ---------------------------------------------------------------------------------------------
# The same work, three ways. Each takes the inputs dict and returns what xfr returns.


def _levels(m: np.ndarray) -> np.ndarray:
    return (255 * m).astype(np.uint8)


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


IMPLS: dict[str, dict[str, Callable[[dict[str, np.ndarray]], Any]]] = {
    "otsu": {
        "xfr": lambda d: kernels.otsu(d["a1"])[1],
        "opencv": lambda d: np.stack([
            cv2.threshold(_levels(m), 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1]
            for m in d["a1"]]).astype(bool),
        "skimage": lambda d: np.stack([
            lv > threshold_otsu(lv) for lv in (_levels(m) for m in d["a1"])]),
    },
    "combine": {
        "xfr": lambda d: kernels.combine(d["b1"], d["b2"], "and"),
        "opencv": lambda d: np.stack([
            cv2.bitwise_and(x.view(np.uint8), y.view(np.uint8))
            for x, y in zip(d["b1"], d["b2"], strict=True)]).view(bool),
        "numpy": lambda d: np.logical_and(d["b1"], d["b2"]),
    },
    "combine_maps": {
        "xfr": lambda d: kernels.combine_maps(d["a1"], d["a2"], d["b1"], d["b2"], "or"),
        "opencv": lambda d: np.stack([
            _opencv_um(a1, a2, b1, b2)
            for a1, a2, b1, b2 in zip(d["a1"], d["a2"], d["b1"], d["b2"], strict=True)]),
        "numpy": lambda d: _numpy_um(d["a1"], d["a2"], d["b1"], d["b2"]),
    },
    "dilate": {
        "xfr": lambda d: kernels.dilate(d["a1"], DSIZE),
        "opencv": lambda d: np.stack([cv2.dilate(m, SE) for m in d["a1"]]),
        "scipy": lambda d: np.stack([
            ndi.maximum_filter(m, footprint=SE > 0, mode="constant", cval=-np.inf)
            for m in d["a1"]]),
    },
    "gaussian": {
        "xfr": lambda d: kernels.gaussian(d["a1"], GSIZE, SIGMA),
        "opencv": lambda d: np.stack([
            cv2.filter2D(m, -1, G2, borderType=cv2.BORDER_REFLECT_101) for m in d["a1"]]),
        "opencv_sep": lambda d: np.stack([
            cv2.sepFilter2D(m, -1, G1, G1, borderType=cv2.BORDER_REFLECT_101)
            for m in d["a1"]]),
        "scipy": lambda d: np.stack([_scipy_gaussian(m) for m in d["a1"]]),
    },
    "smooth_heatmap": {
        "xfr": lambda d: kernels.smooth_heatmap(d["a1"], DSIZE, GSIZE, SIGMA),
        "opencv": lambda d: np.stack([_opencv_chain(m, separable=False) for m in d["a1"]]),
        "opencv_sep": lambda d: np.stack([_opencv_chain(m, separable=True) for m in d["a1"]]),
        "scipy": lambda d: np.stack([_scipy_chain(m) for m in d["a1"]]),
    },
}


def _opencv_um(a1, a2, b1, b2) -> np.ndarray:
    f1, f2 = b1.astype(np.float32), b2.astype(np.float32)
    s = cv2.add(cv2.multiply(a1, f1), cv2.multiply(a2, f2))
    both = cv2.multiply(f1, f2)
    one = cv2.absdiff(f1, f2)
    return cv2.add(cv2.multiply(s, both, scale=0.5), cv2.multiply(s, one))


def _numpy_um(a1, a2, b1, b2) -> np.ndarray:
    s = b1 * a1 + b2 * a2
    return np.where(b1 & b2, s / 2, np.where(b1 ^ b2, s, 0)).astype(np.float32)


def _scipy_gaussian(m: np.ndarray) -> np.ndarray:
    x = ndi.correlate1d(m, G1_64, axis=0, mode="mirror")
    return ndi.correlate1d(x, G1_64, axis=1, mode="mirror")


def _opencv_chain(m: np.ndarray, separable: bool) -> np.ndarray:
    x = cv2.normalize(m, None, 0, 1, cv2.NORM_MINMAX)
    x = cv2.dilate(x, SE)
    if separable:
        x = cv2.sepFilter2D(x, -1, G1, G1, borderType=cv2.BORDER_REFLECT_101)
    else:
        x = cv2.filter2D(x, -1, G2, borderType=cv2.BORDER_REFLECT_101)
    return cv2.normalize(x, None, 0, 1, cv2.NORM_MINMAX)


def _scipy_chain(m: np.ndarray) -> np.ndarray:
    x = ndi.maximum_filter(_minmax(m), footprint=SE > 0, mode="constant", cval=-np.inf)
    return _minmax(_scipy_gaussian(x))


def assert_same(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert theirs.shape == ours.shape
    if ours.dtype == bool:
        np.testing.assert_array_equal(theirs, ours)
    else:
        np.testing.assert_allclose(theirs, ours, atol=1e-5)


# The implementations of one kernel, size and batch run one after the other, so that they meet
# the same load on a shared machine.
CASES = [(kernel, size, batch, impl) for kernel, impls in IMPLS.items() for size in SIZES
         for batch in BATCHES for impl in impls]


@pytest.mark.parametrize(("kernel", "size", "batch", "impl"), CASES)
def test_benchmark(benchmark: Any, kernel: str, size: int, batch: int, impl: str) -> None:
    data = inputs(size, batch)
    fn = IMPLS[kernel][impl]
    t0 = time.perf_counter()
    result = fn(data)
    once = time.perf_counter() - t0
    assert_same(IMPLS[kernel]["xfr"](data), result)
    benchmark.group = f"{kernel} {size}x{size} batch {batch}"
    benchmark.extra_info.update(kernel=kernel, impl=impl, size=size, batch=batch)
    rounds = int(min(200, max(5, 1.5 / max(once, 1e-6))))  # about 1.5 s per benchmark
    benchmark.pedantic(fn, args=(data,), rounds=rounds, warmup_rounds=1)
