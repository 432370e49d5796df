"""xfr.kernels.combine and combine_maps: the mask operations and heatmap-value rules of
OIM / UM / N-IUM (paper Sec. 3.2-3.3; docs/method.md, "Mask strategies") equal the NumPy
reference bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_reference import combine as reference_combine
from kernel_reference import combine_maps as reference_maps

from xfr import kernels

shapes = st.tuples(st.integers(1, 3), st.integers(1, 300), st.integers(1, 300))


@settings(max_examples=30)
@given(seed=st.integers(0, 2**32 - 1), shape=shapes, op=st.sampled_from(["and", "or", "xor"]),
       density=st.floats(0, 1))
def test_combine_equals_the_reference(seed: int, shape: tuple[int, int, int], op: str,
                                      density: float) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.random(shape) < density, rng.random(shape) < 0.5
    out = kernels.combine(a, b, op)
    assert out.dtype == bool and out.shape == shape
    np.testing.assert_array_equal(out, reference_combine(a, b, op))
    # uint8 0/1 masks are the same masks
    np.testing.assert_array_equal(kernels.combine(a.astype(np.uint8), b.astype(np.uint8), op), out)


@settings(max_examples=30)
@given(seed=st.integers(0, 2**32 - 1), shape=shapes, op=st.sampled_from(["and", "or", "xor"]),
       scale=st.sampled_from([1.0, 1e3, -7.5]))
def test_combine_maps_equals_the_reference(seed: int, shape: tuple[int, int, int], op: str,
                                           scale: float) -> None:
    rng = np.random.default_rng(seed)
    a1 = (rng.random(shape, dtype=np.float32) * scale).astype(np.float32)
    a2 = (rng.random(shape, dtype=np.float32) * scale).astype(np.float32)
    b1, b2 = rng.random(shape) < 0.4, rng.random(shape) < 0.6
    out = kernels.combine_maps(a1, a2, b1, b2, op)
    assert out.dtype == np.float32 and out.shape == shape
    np.testing.assert_array_equal(out, reference_maps(a1, a2, b1, b2, op))
    assert not out[~reference_combine(b1, b2, op)].any()  # zero outside the combined mask


def test_hand_computed_values() -> None:
    b1 = np.array([[1, 1, 0, 0]], dtype=bool)
    b2 = np.array([[1, 0, 1, 0]], dtype=bool)
    a1 = np.array([[0.8, 0.6, 0.1, 0.3]], dtype=np.float32)
    a2 = np.array([[0.4, 0.3, 0.9, 0.2]], dtype=np.float32)
    np.testing.assert_array_equal(kernels.combine(b1, b2, "and"), [[True, False, False, False]])
    np.testing.assert_array_equal(kernels.combine(b1, b2, "or"), [[True, True, True, False]])
    np.testing.assert_array_equal(kernels.combine(b1, b2, "xor"), [[False, True, True, False]])
    # the mean of the two maps where both masks are set, the one masked map where one is
    intersection = kernels.combine_maps(a1, a2, b1, b2, "and")
    symmetric_difference = kernels.combine_maps(a1, a2, b1, b2, "xor")
    union = kernels.combine_maps(a1, a2, b1, b2, "or")
    np.testing.assert_allclose(intersection, [[0.6, 0, 0, 0]], atol=1e-7)
    np.testing.assert_allclose(symmetric_difference, [[0, 0.6, 0.9, 0]], atol=1e-7)
    np.testing.assert_allclose(union, [[0.6, 0.6, 0.9, 0]], atol=1e-7)


@pytest.mark.parametrize("op", ["and", "or", "xor"])
def test_one_pair_gives_the_same_as_its_batch_row(op: str) -> None:
    rng = np.random.default_rng(1)
    a1, a2 = rng.random((2, 3, 20, 24), dtype=np.float32)
    b1, b2 = a1 > 0.5, a2 > 0.3
    batch = kernels.combine_maps(a1, a2, b1, b2, op)
    single = kernels.combine_maps(a1[2], a2[2], b1[2], b2[2], op)
    assert single.shape == (20, 24)
    np.testing.assert_array_equal(single, batch[2])
