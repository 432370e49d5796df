"""xfr.kernels.dilate equals cv2.dilate with cv2.getStructuringElement (ellipse and rect, any
size, even sizes with OpenCV's anchor), scipy.ndimage.maximum_filter and the NumPy reference."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import example, given, settings
from hypothesis import strategies as st
from kernel_reference import MAP_KINDS, random_maps
from kernel_reference import dilate as reference_dilate
from kernel_reference import structuring_element as reference_element

from xfr import kernels

CV_SHAPES = {"ellipse": cv2.MORPH_ELLIPSE, "rect": cv2.MORPH_RECT}


@settings(max_examples=60)
@given(shape=st.sampled_from(["ellipse", "rect"]), w=st.integers(1, 300), h=st.integers(1, 300))
def test_structuring_element_equals_opencv(shape: str, w: int, h: int) -> None:
    se = kernels.structuring_element((w, h), shape)
    assert se.dtype == bool and se.shape == (h, w)
    np.testing.assert_array_equal(se, cv2.getStructuringElement(CV_SHAPES[shape], (w, h)) > 0)
    np.testing.assert_array_equal(se, reference_element(shape, w, h))


def test_paper_element_is_opencvs_asymmetric_8x8_ellipse() -> None:
    se = kernels.structuring_element(8, "ellipse")
    assert se[0].tolist() == [False] * 4 + [True] + [False] * 3  # one pixel, right of centre
    assert se[4].all() and not se[:, 0][[0, 1, 2, 6, 7]].any()


def pick(fraction: float, largest: int) -> int:
    """A size in 1..largest from a fraction in [0, 1]."""
    return 1 + round(fraction * (largest - 1))


@settings(max_examples=40)
@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(MAP_KINDS), n=st.integers(1, 2),
       h=st.integers(1, 300), w=st.integers(1, 300), shape=st.sampled_from(["ellipse", "rect"]),
       fw=st.floats(0, 1), fh=st.floats(0, 1))
@example(seed=1, kind="uniform", n=1, h=300, w=300, shape="ellipse", fw=1.0, fh=1.0)
@example(seed=2, kind="uniform", n=1, h=300, w=299, shape="ellipse", fw=0.5, fh=0.1)
@example(seed=3, kind="blobs", n=2, h=112, w=112, shape="ellipse", fw=7 / 111, fh=7 / 111)
@example(seed=4, kind="uniform", n=1, h=1, w=300, shape="rect", fw=1.0, fh=1.0)
def test_dilate_equals_opencv_and_scipy(seed: int, kind: str, n: int, h: int, w: int,
                                        shape: str, fw: float, fh: float) -> None:
    kw, kh = pick(fw, w), pick(fh, h)
    maps = random_maps(seed, kind, n, h, w)
    out = kernels.dilate(maps, (kw, kh), shape)
    assert out.dtype == np.float32 and out.shape == (n, h, w)
    se = cv2.getStructuringElement(CV_SHAPES[shape], (kw, kh))
    for i in range(n):
        np.testing.assert_array_equal(out[i], cv2.dilate(maps[i], se))
        if kw * kh <= 2500:  # SciPy runs out of memory on huge footprints
            np.testing.assert_array_equal(out[i], ndi.maximum_filter(
                maps[i], footprint=se > 0, mode="constant", cval=-np.inf))


@settings(max_examples=25)
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(1, 60), w=st.integers(1, 60),
       shape=st.sampled_from(["ellipse", "rect"]), data=st.data())
def test_dilate_equals_the_reference(seed: int, h: int, w: int, shape: str,
                                     data: st.DataObject) -> None:
    kw = data.draw(st.integers(1, min(w, 20)), label="kw")
    kh = data.draw(st.integers(1, min(h, 20)), label="kh")
    maps = random_maps(seed, "uniform", 2, h, w)
    np.testing.assert_array_equal(kernels.dilate(maps, (kw, kh), shape),
                                  reference_dilate(maps, kw, kh, shape))


@pytest.mark.parametrize("size", [(8, 8), (1, 1), (2, 2), (112, 112), (3, 50)])
def test_paper_sized_maps(size: tuple[int, int]) -> None:
    maps = random_maps(3, "blobs", 4, 112, 112)
    out = kernels.dilate(maps, size)
    se = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, size)
    for i in range(4):
        np.testing.assert_array_equal(out[i], cv2.dilate(maps[i], se))


def test_dilation_never_lowers_a_value_and_keeps_the_maximum() -> None:
    maps = random_maps(4, "uniform", 3, 50, 70) * 10 - 5
    out = kernels.dilate(maps.astype(np.float32))
    assert (out >= maps).all()
    np.testing.assert_array_equal(out.max(axis=(1, 2)), maps.max(axis=(1, 2)))
