"""xfr.kernels.gaussian: a separable Gaussian normalised to sum 1 with reflect-101 borders,
equal to cv2.filter2D with the same 2-D kernel and anchor, scipy.ndimage and the NumPy
reference within 1e-5, any size (even 56 included)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import example, given, settings
from hypothesis import strategies as st
from kernel_reference import MAP_KINDS, random_maps
from kernel_reference import gaussian as reference_gaussian

from xfr import kernels

TOL = 1e-5


def opencv_gaussian(m: np.ndarray, size: int, sigma: float) -> np.ndarray:
    g = kernels.gaussian_kernel(size, sigma)
    return cv2.filter2D(m, -1, np.outer(g, g), borderType=cv2.BORDER_REFLECT_101)


@settings(max_examples=40)
@given(size=st.integers(1, 300), sigma=st.floats(0.05, 500))
def test_kernel_is_the_normalised_gaussian_formula(size: int, sigma: float) -> None:
    g = kernels.gaussian_kernel(size, sigma)
    assert g.dtype == np.float32 and g.shape == (size,)
    assert abs(float(g.astype(np.float64).sum()) - 1) < 1e-5
    np.testing.assert_array_equal(g, g[::-1])
    x = np.arange(size) - (size - 1) / 2
    formula = np.exp(-(x * x - (x * x).min()) / (2 * sigma * sigma))
    np.testing.assert_allclose(g, formula / formula.sum(), rtol=1e-6, atol=1e-12)
    if size % 2:  # cv2.getGaussianKernel is documented for odd sizes only (flat-topped if even)
        np.testing.assert_allclose(g, cv2.getGaussianKernel(size, sigma, cv2.CV_64F)[:, 0],
                                   rtol=1e-6, atol=1e-12)


def test_even_kernel_never_underflows() -> None:
    g = kernels.gaussian_kernel(4, 1e-3)  # every tap is exp(-huge): shifted, still sums to 1
    np.testing.assert_allclose(g, [0, 0.5, 0.5, 0], atol=1e-7)


def pick(fraction: float, largest: int) -> int:
    """A size in 1..largest from a fraction in [0, 1]."""
    return 1 + round(fraction * (largest - 1))


@settings(max_examples=40)
@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(MAP_KINDS), n=st.integers(1, 2),
       h=st.integers(1, 300), w=st.integers(1, 300), sigma=st.floats(0.3, 100),
       fraction=st.floats(0, 1))
@example(seed=1, kind="uniform", n=1, h=300, w=300, sigma=300 / 8.5, fraction=1.0)
@example(seed=2, kind="blobs", n=2, h=112, w=112, sigma=56 / 8.5, fraction=55 / 111)
@example(seed=3, kind="uniform", n=1, h=1, w=300, sigma=1.0, fraction=1.0)
@example(seed=4, kind="uniform", n=1, h=2, w=2, sigma=1.0, fraction=1.0)
def test_gaussian_equals_opencv_filter2d_and_scipy(seed: int, kind: str, n: int, h: int, w: int,
                                                   sigma: float, fraction: float) -> None:
    size = pick(fraction, min(h, w))
    maps = random_maps(seed, kind, n, h, w)
    out = kernels.gaussian(maps, size, sigma)
    assert out.dtype == np.float32 and out.shape == (n, h, w)
    g = kernels.gaussian_kernel(size, sigma).astype(np.float64)
    for i in range(n):
        np.testing.assert_allclose(out[i], opencv_gaussian(maps[i], size, sigma), atol=TOL)
        sep = ndi.correlate1d(ndi.correlate1d(maps[i].astype(np.float64), g, axis=0,
                                              mode="mirror"), g, axis=1, mode="mirror")
        np.testing.assert_allclose(out[i], sep, atol=TOL)


@settings(max_examples=20)
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(1, 64), w=st.integers(1, 64),
       sigma=st.floats(0.3, 30), data=st.data())
def test_gaussian_equals_the_2d_reference(seed: int, h: int, w: int, sigma: float,
                                          data: st.DataObject) -> None:
    size = data.draw(st.integers(1, min(h, w, 24)), label="size")
    maps = random_maps(seed, "uniform", 2, h, w)
    np.testing.assert_allclose(kernels.gaussian(maps, size, sigma),
                               reference_gaussian(maps, size, sigma), atol=TOL)


def test_paper_gaussian_56_on_112_equals_the_reference() -> None:
    maps = random_maps(0, "blobs", 2, 112, 112)
    out = kernels.gaussian(maps)  # size 56, sigma 56 / 8.5
    np.testing.assert_allclose(out, reference_gaussian(maps, 56, 56 / 8.5), atol=TOL)
    for i in range(2):
        np.testing.assert_allclose(out[i], opencv_gaussian(maps[i], 56, 56 / 8.5), atol=TOL)


def test_even_size_is_anchored_at_size_over_2() -> None:
    # Correlation: out[y, x] = sum K[i, j] in[y + i - 3, x + j - 3] for size 6 (anchor 3), so
    # a bright pixel at (10, 10) shows the flipped kernel over rows/cols 8..13 (not 7..12).
    impulse = np.zeros((1, 20, 20), dtype=np.float32)
    impulse[0, 10, 10] = 1
    g = kernels.gaussian_kernel(6, 1.5)
    out = kernels.gaussian(impulse, 6, 1.5)[0]
    np.testing.assert_allclose(out[8:14, 8:14], np.outer(g, g)[::-1, ::-1], atol=1e-7)
    assert out[7].max() == 0 and out[:, 7].max() == 0


@pytest.mark.parametrize("value", [0.0, 0.25, 1.0, 1e6])
def test_a_constant_map_stays_constant(value: float) -> None:
    maps = np.full((2, 30, 40), value, dtype=np.float32)
    np.testing.assert_allclose(kernels.gaussian(maps, 17, 3.0), maps, rtol=1e-5)
