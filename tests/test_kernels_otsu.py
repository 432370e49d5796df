"""xfr.kernels.otsu equals OpenCV's THRESH_BINARY + THRESH_OTSU on uint8(255 * map) and the
NumPy reference, for every map: random shapes, noise, attention-like blobs, ties, constants.

OpenCV's pip wheels hand Otsu to Intel IPP when they can; IPP's closed arithmetic can break an
exact tie between two splits differently from OpenCV's own code (three equally filled levels
10, 20, 30: IPP 20, OpenCV's code 10). We reproduce OpenCV's code, so the exact comparisons
run with IPP off; with IPP on, the results agree wherever there is no exact tie."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_reference import MAP_KINDS, random_maps, to_levels
from kernel_reference import otsu as reference_otsu

from xfr import kernels


def opencv_otsu(m: np.ndarray, ipp: bool = False) -> tuple[float, np.ndarray]:
    """cv2.threshold(OTSU) on uint8(255 * m), by OpenCV's own code unless ``ipp``."""
    was = cv2.ipp.useIPP()
    cv2.ipp.setUseIPP(ipp)
    try:
        t, mask = cv2.threshold(to_levels(m), 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    finally:
        cv2.ipp.setUseIPP(was)
    return t, mask.astype(bool)


@settings(max_examples=40)
@given(
    seed=st.integers(0, 2**32 - 1),
    kind=st.sampled_from(MAP_KINDS),
    n=st.integers(1, 3),
    h=st.integers(1, 300),
    w=st.integers(1, 300),
)
def test_otsu_equals_opencv_and_the_reference(seed: int, kind: str, n: int, h: int,
                                              w: int) -> None:
    maps = random_maps(seed, kind, n, h, w)
    thresholds, masks = kernels.otsu(maps)
    assert thresholds.dtype == np.float32 and thresholds.shape == (n,)
    assert masks.dtype == bool and masks.shape == (n, h, w)
    ref_t, ref_masks = reference_otsu(maps)
    np.testing.assert_array_equal(thresholds, ref_t)
    np.testing.assert_array_equal(masks, ref_masks)
    for i in range(n):
        t, mask = opencv_otsu(maps[i])
        assert thresholds[i] == t
        np.testing.assert_array_equal(masks[i], mask)


def test_exact_ties_break_as_in_opencv() -> None:
    # Three equally populated levels 0, 100, 200: splitting after 0 or after 100 gives the same
    # between-class variance in exact arithmetic; OpenCV's rounding decides, and so must ours.
    levels = np.repeat(np.array([0, 100, 200], dtype=np.float32), 300).reshape(30, 30)
    maps = (levels + 0.5) / 255  # level = floor(255 * map)
    assert (to_levels(maps) == levels).all()
    t, mask = kernels.otsu(maps)
    cv_t, cv_mask = opencv_otsu(maps)
    assert t == cv_t
    np.testing.assert_array_equal(mask, cv_mask)


def test_a_tie_that_opencvs_ipp_path_may_break_the_other_way() -> None:
    maps = (np.array([[10, 20, 30]], dtype=np.float32) + 0.5) / 255
    t, mask = kernels.otsu(maps)
    assert t == opencv_otsu(maps)[0] == 10  # OpenCV's own code (IPP off)
    np.testing.assert_array_equal(mask, [[False, True, True]])


@pytest.mark.parametrize("size", [112, 224])
def test_equals_opencv_with_ipp_on_attention_like_maps(size: int) -> None:
    maps = random_maps(size, "blobs", 6, size, size)
    thresholds, masks = kernels.otsu(maps)
    for i in range(6):
        t, mask = opencv_otsu(maps[i], ipp=True)
        assert thresholds[i] == t
        np.testing.assert_array_equal(masks[i], mask)


def test_levels_truncate_like_numpy_astype() -> None:
    # 0.999 * 255 = 254.745: level 254 (truncation), where rounding would give 255.
    maps = np.array([[0.0, 0.999, 0.999, 1.0]], dtype=np.float32)
    t, mask = kernels.otsu(maps)
    assert to_levels(maps).tolist() == [[0, 254, 254, 255]]
    assert t == opencv_otsu(maps)[0]
    np.testing.assert_array_equal(mask, [[False, True, True, True]])


@pytest.mark.parametrize(("value", "expected"), [(0.0, False), (0.5, True), (1.0, True)])
def test_a_constant_map_has_threshold_zero(value: float, expected: bool) -> None:
    maps = np.full((2, 7, 5), value, dtype=np.float32)
    thresholds, masks = kernels.otsu(maps)
    np.testing.assert_array_equal(thresholds, [0.0, 0.0])
    assert (masks == expected).all()
    t, mask = opencv_otsu(maps[0])
    assert t == 0.0 and (mask == expected).all()


def test_one_map_gives_an_unbatched_result() -> None:
    maps = random_maps(5, "blobs", 3, 40, 30)
    thresholds, masks = kernels.otsu(maps)
    t, mask = kernels.otsu(maps[1])
    assert mask.shape == (40, 30)
    assert np.ndim(t) == 0 and t == thresholds[1]
    np.testing.assert_array_equal(mask, masks[1])


def test_non_contiguous_maps_give_the_same_result() -> None:
    maps = random_maps(9, "uniform", 4, 33, 44)
    view = maps[::2, :, ::-1]
    np.testing.assert_array_equal(kernels.otsu(view)[1], kernels.otsu(view.copy())[1])


def test_equals_scikit_image_on_attention_like_maps() -> None:
    # scikit-image computes Otsu its own way (bin centres, argmax of the between-class
    # variance); on maps without exact ties it must find the same split.
    from skimage.filters import threshold_otsu

    maps = random_maps(21, "blobs", 8, 112, 112)
    _, masks = kernels.otsu(maps)
    for i in range(8):
        levels = to_levels(maps[i])
        np.testing.assert_array_equal(masks[i], levels > threshold_otsu(levels))
