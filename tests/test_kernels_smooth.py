"""xfr.kernels.smooth_heatmap, the paper's fused smoothing (min-max -> 8x8 elliptical dilation ->
Gaussian 56, sigma 56/8.5 -> min-max, Sec. 3.3), equals the same chain of reference kernels and
of OpenCV calls; constant maps give zeros.

Tolerance: the final min-max divides by the range R of the Gaussian's output, so rounding
differences of the float32 Gaussian (< 1e-6 of the [0, 1] scale) become 1e-6 / R after it;
we assert |ours - theirs| * R <= 1e-6 (that is within 1e-5 wherever R >= 0.1)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from kernel_reference import MAP_KINDS, dilate, gaussian, min_max, random_maps

from xfr import kernels


def reference_chain(maps: np.ndarray, dsize: int, gsize: int, sigma: float):
    """The reference chain, and the range of its Gaussian output per image."""
    g = gaussian(dilate(min_max(maps), dsize, dsize, "ellipse"), gsize, sigma)
    return min_max(g), g.max(axis=(1, 2)) - g.min(axis=(1, 2))


def opencv_chain(m: np.ndarray, dsize: int, gsize: int, sigma: float) -> np.ndarray:
    x = cv2.normalize(m, None, 0, 1, cv2.NORM_MINMAX)
    x = cv2.dilate(x, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (dsize, dsize)))
    g = kernels.gaussian_kernel(gsize, sigma)
    x = cv2.filter2D(x, -1, np.outer(g, g), borderType=cv2.BORDER_REFLECT_101)
    return cv2.normalize(x, None, 0, 1, cv2.NORM_MINMAX)


def assert_close_after_min_max(out: np.ndarray, ref: np.ndarray, ranges: np.ndarray) -> None:
    for i in range(out.shape[0]):
        err = float(np.abs(out[i] - ref[i]).max())
        assert err * ranges[i] <= 1e-6, (i, err, ranges[i])


@settings(max_examples=20)
@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(MAP_KINDS), n=st.integers(1, 2),
       h=st.integers(1, 120), w=st.integers(1, 120), fd=st.floats(0, 1), fg=st.floats(0, 1),
       sigma=st.floats(0.5, 20))
@example(seed=1, kind="blobs", n=2, h=112, w=112, fd=7 / 111, fg=55 / 111, sigma=56 / 8.5)
def test_smooth_equals_the_reference_and_opencv_chains(seed: int, kind: str, n: int, h: int,
                                                       w: int, fd: float, fg: float,
                                                       sigma: float) -> None:
    side = min(h, w)
    dsize = 1 + round(fd * min(side - 1, 19))
    gsize = 1 + round(fg * (side - 1))
    maps = random_maps(seed, kind, n, h, w)
    out = kernels.smooth_heatmap(maps, dsize, gsize, sigma)
    assert out.dtype == np.float32 and out.shape == (n, h, w)
    ref, ranges = reference_chain(maps, dsize, gsize, sigma)
    assert_close_after_min_max(out, ref, ranges)
    for i in range(n):
        cv = opencv_chain(maps[i], dsize, gsize, sigma)
        assert_close_after_min_max(out[i : i + 1], cv[None], ranges[i : i + 1])


def test_paper_settings_on_attention_like_maps() -> None:
    maps = random_maps(11, "blobs", 3, 112, 112)
    out = kernels.smooth_heatmap(maps)  # 8, 56, 56 / 8.5
    ref, ranges = reference_chain(maps, 8, 56, 56 / 8.5)
    assert (ranges > 0.1).all()
    np.testing.assert_allclose(out, ref, atol=1e-5)
    np.testing.assert_array_equal(out.min(axis=(1, 2)), 0)
    np.testing.assert_array_equal(out.max(axis=(1, 2)), 1)


@pytest.mark.parametrize("value", [0.0, 0.3, 1.0, -5.0, 3e38])
def test_a_constant_map_gives_zeros(value: float) -> None:
    maps = np.full((2, 60, 60), value, dtype=np.float32)
    out = kernels.smooth_heatmap(maps)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, 0)


def test_a_map_spanning_more_than_the_float32_range_stays_finite() -> None:
    maps = np.full((1, 60, 60), -3e38, dtype=np.float32)
    maps[0, 30, 30] = 3e38  # max - min overflows float32
    out = kernels.smooth_heatmap(maps)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, kernels.smooth_heatmap((maps > 0).astype(np.float32)),
                               atol=1e-5)


def test_a_map_flattened_by_the_dilation_gives_zeros() -> None:
    maps = np.zeros((1, 60, 60), dtype=np.float32)
    maps[0, ::2, ::2] = 1  # every 8x8 ellipse reaches a 1: the dilated map is constant
    np.testing.assert_array_equal(kernels.smooth_heatmap(maps), 0)


def test_the_result_does_not_depend_on_the_maps_scale_or_offset() -> None:
    maps = random_maps(2, "blobs", 2, 112, 112)
    out = kernels.smooth_heatmap(maps)
    np.testing.assert_allclose(kernels.smooth_heatmap(maps * 40 - 7), out, atol=1e-5)


def test_fused_equals_the_composition_of_the_separate_kernels() -> None:
    maps = random_maps(6, "blobs", 2, 112, 112)
    steps = kernels.gaussian(kernels.dilate(min_max(maps), 8), 56)
    lo = steps.min(axis=(1, 2), keepdims=True)
    hi = steps.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(kernels.smooth_heatmap(maps), (steps - lo) / (hi - lo), atol=1e-5)
