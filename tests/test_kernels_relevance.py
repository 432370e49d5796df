"""The compiled element-wise steps of relevance propagation (``xfr.kernels.relevance``; issue
19) against their definition, the torch code they replace: equal bit for bit, in float32 and
float64, on random values with the special cases every rule meets (zero denominators, a
denominator that the guard cancels, zeros, infinities, NaN), on any number of threads; the
cases the compiled code does not take run the torch code; the LRP maps of the default model
are the same with and without the compiled kernels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from xfr import _kernels
from xfr.kernels.relevance import (
    EPS,
    alpha_beta_shares,
    alpha_beta_shares_torch,
    safe_divide,
    safe_divide_torch,
    use_compiled,
)

DTYPES = {np.float32: torch.float32, np.float64: torch.float64}


def _special(dtype: type) -> list[float]:
    """Values every rule meets: zeros, the guard's own cancellation, tiny and huge values."""
    eps = float(np.asarray(EPS, dtype=dtype))
    return [0.0, -0.0, -eps, eps, 1e-300 if dtype == np.float64 else 1e-38, -1.0, 1.0, 3.5e3,
            float("inf"), float("-inf"), float("nan")]


def _arrays(dtype: type, shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    values = st.one_of(st.floats(width=32 if dtype == np.float32 else 64, allow_nan=True),
                       st.sampled_from(_special(dtype)))
    return hnp.arrays(dtype, shape, elements=values)


def _same(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal bit for bit, NaN included."""
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(np.ascontiguousarray(a.detach().numpy()).view(np.uint8),
                                  np.ascontiguousarray(b.detach().numpy()).view(np.uint8))


shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=9)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([np.float32, np.float64]), shapes, st.data())
def test_safe_divide_equals_the_torch_code_bit_for_bit(dtype, shape, data) -> None:
    a = torch.from_numpy(data.draw(_arrays(dtype, shape)))
    b = torch.from_numpy(data.draw(_arrays(dtype, shape)))
    _same(safe_divide(a, b), safe_divide_torch(a, b))


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([np.float32, np.float64]), shapes,
       st.sampled_from([0.5, 1.0, 2.0, 0.3, 1e-3]), st.data())
def test_alpha_beta_shares_equal_the_torch_code_bit_for_bit(dtype, shape, alpha, data) -> None:
    r, zs, za = (torch.from_numpy(data.draw(_arrays(dtype, shape))) for _ in range(3))
    got = alpha_beta_shares(r, zs, za, alpha)
    want = alpha_beta_shares_torch(r, zs.clone(), za.clone(), alpha)
    _same(got[0], want[0])
    _same(got[1], want[1])


def test_the_guard_rules() -> None:
    a = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    b = torch.tensor([0.0, 2.0, -EPS, -3.0], dtype=torch.float64)
    out = safe_divide(a, b)
    assert out[0] == 0  # b == 0
    assert out[1] == 2.0 / (2.0 + EPS)
    assert out[2] == 3.0 / EPS  # the guard cancels the denominator: 1e-9 instead
    assert out[3] == 4.0 / (-3.0 + EPS)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_large_inputs_over_threads_equal_the_torch_code(threads: int) -> None:
    g = torch.Generator().manual_seed(threads)
    # 2.1 million values: one part per thread (a thread per million), the last one shorter
    a = torch.randn(3, 700, 1001, dtype=torch.float64, generator=g)
    b = torch.randn(3, 700, 1001, dtype=torch.float64, generator=g)
    b[0, :7] = 0
    b[1, :3] = -EPS
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _same(safe_divide(a, b), safe_divide_torch(a, b))
        for alpha in (0.5, 1.0):
            got = alpha_beta_shares(a, b, b.abs(), alpha)
            want = alpha_beta_shares_torch(a, b.clone(), b.abs(), alpha)
            _same(got[0], want[0])
            _same(got[1], want[1])
    finally:
        torch.set_num_threads(before)


def test_what_the_compiled_code_does_not_take_runs_the_torch_code() -> None:
    a = torch.randn(4, 5, dtype=torch.float64)
    # broadcasting, another dtype, a tensor that needs a gradient: the definition
    b = torch.randn(1, 5, dtype=torch.float64)
    torch.testing.assert_close(safe_divide(a, b), safe_divide_torch(a, b), rtol=0, atol=0)
    h = a.to(torch.float16)
    torch.testing.assert_close(safe_divide(h, h), safe_divide_torch(h, h), rtol=0, atol=0)
    w = a.clone().requires_grad_(True)
    out = safe_divide(w, a)
    assert out.requires_grad
    out.sum().backward()
    assert w.grad is not None
    # non-contiguous inputs are taken (copied first)
    t = torch.randn(5, 4, dtype=torch.float64).t()
    _same(safe_divide(t, a), safe_divide_torch(t, a))


def test_the_compiled_module_refuses_what_it_cannot_take() -> None:
    a = np.zeros((2, 3))
    with pytest.raises(ValueError, match="same dtype and shape"):
        _kernels.safe_divide(a, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="same dtype and shape"):
        _kernels.safe_divide(a, a.astype(np.float32))
    with pytest.raises(ValueError, match="float32 or float64"):
        _kernels.safe_divide(a.astype(np.int64), a.astype(np.int64))
    with pytest.raises(ValueError, match="C-contiguous"):
        _kernels.safe_divide(np.zeros((3, 2)).T, a)
    with pytest.raises(ValueError, match="threads"):
        _kernels.safe_divide(a, a, 0)
    with pytest.raises(ValueError, match="alpha"):
        _kernels.alpha_beta_shares(a, a, a, 0.0)


@pytest.mark.parametrize("generator", ["nograd-lrp", "vit-lrp"])
def test_lrp_maps_are_the_same_with_and_without_the_compiled_kernels(default_verifier,
                                                                     generator) -> None:
    from xfr import registry

    faces = torch.rand(3, 3, 112, 112, generator=torch.Generator().manual_seed(5)) * 255
    maps = registry.create("attention", generator)
    with use_compiled(False):
        want = maps(default_verifier, faces)
    got = maps(default_verifier, faces)
    _same(got, want)
