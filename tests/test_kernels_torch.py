"""The torch path of xfr.kernels (tensors, CPU or GPU) agrees with the compiled NumPy path:
masks, thresholds, dilations and combined maps exactly, Gaussians within 1e-5, the smoothed
heatmap within 1e-6 / R (R: range of the Gaussian's output, see test_kernels_smooth.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from kernel_reference import MAP_KINDS, dilate, gaussian, min_max, random_maps

from xfr import kernels

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def as_tensor(a: np.ndarray, device: str) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(device)


def back(t: torch.Tensor, device: str) -> np.ndarray:
    assert isinstance(t, torch.Tensor) and t.device.type == device
    return t.cpu().numpy()


shapes = st.tuples(st.integers(1, 3), st.integers(1, 300), st.integers(1, 300))


@pytest.mark.parametrize("device", DEVICES)
@settings(max_examples=15)
@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(MAP_KINDS), shape=shapes)
def test_otsu(device: str, seed: int, kind: str, shape: tuple[int, int, int]) -> None:
    maps = random_maps(seed, kind, *shape)
    t, m = kernels.otsu(maps)
    tt, tm = kernels.otsu(as_tensor(maps, device))
    assert tt.dtype == torch.float32 and tm.dtype == torch.bool
    np.testing.assert_array_equal(back(tt, device), t)
    np.testing.assert_array_equal(back(tm, device), m)


@pytest.mark.parametrize("device", DEVICES)
def test_otsu_ties_and_constants(device: str) -> None:
    levels = np.repeat(np.array([0, 100, 200], dtype=np.float32), 300).reshape(1, 30, 30)
    maps = np.concatenate([(levels + 0.5) / 255, np.zeros_like(levels), np.ones_like(levels)])
    t, m = kernels.otsu(maps)
    tt, tm = kernels.otsu(as_tensor(maps, device))
    np.testing.assert_array_equal(back(tt, device), t)
    np.testing.assert_array_equal(back(tm, device), m)


@pytest.mark.parametrize("device", DEVICES)
@settings(max_examples=15)
@given(seed=st.integers(0, 2**32 - 1), shape=shapes, op=st.sampled_from(["and", "or", "xor"]))
def test_combine_and_combine_maps(device: str, seed: int, shape: tuple[int, int, int],
                                  op: str) -> None:
    rng = np.random.default_rng(seed)
    a1, a2 = rng.random((2, *shape), dtype=np.float32)
    b1, b2 = rng.random(shape) < 0.5, rng.random(shape) < 0.3
    out = kernels.combine(as_tensor(b1, device), as_tensor(b2, device), op)
    np.testing.assert_array_equal(back(out, device), kernels.combine(b1, b2, op))
    heat = kernels.combine_maps(*(as_tensor(x, device) for x in (a1, a2, b1, b2)), op)
    assert heat.dtype == torch.float32
    np.testing.assert_array_equal(back(heat, device), kernels.combine_maps(a1, a2, b1, b2, op))


@pytest.mark.parametrize("device", DEVICES)
@settings(max_examples=15)
@given(seed=st.integers(0, 2**32 - 1), shape=shapes, fw=st.floats(0, 1), fh=st.floats(0, 1),
       element=st.sampled_from(["ellipse", "rect"]))
@example(seed=0, shape=(2, 112, 112), fw=7 / 111, fh=7 / 111, element="ellipse")
def test_dilate(device: str, seed: int, shape: tuple[int, int, int], fw: float, fh: float,
                element: str) -> None:
    _, h, w = shape
    kw, kh = 1 + round(fw * min(w - 1, 40)), 1 + round(fh * min(h - 1, 40))
    maps = random_maps(seed, "uniform", *shape)
    out = kernels.dilate(as_tensor(maps, device), (kw, kh), element)
    np.testing.assert_array_equal(back(out, device), kernels.dilate(maps, (kw, kh), element))


@pytest.mark.parametrize("device", DEVICES)
@settings(max_examples=15)
@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(MAP_KINDS), shape=shapes,
       fraction=st.floats(0, 1), sigma=st.floats(0.3, 60))
@example(seed=0, kind="blobs", shape=(2, 112, 112), fraction=55 / 111, sigma=56 / 8.5)
def test_gaussian(device: str, seed: int, kind: str, shape: tuple[int, int, int],
                  fraction: float, sigma: float) -> None:
    size = 1 + round(fraction * (min(shape[1:]) - 1))
    maps = random_maps(seed, kind, *shape)
    out = kernels.gaussian(as_tensor(maps, device), size, sigma)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(back(out, device), kernels.gaussian(maps, size, sigma), atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
@settings(max_examples=10)
@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(MAP_KINDS), n=st.integers(1, 2),
       h=st.integers(1, 120), w=st.integers(1, 120), fd=st.floats(0, 1), fg=st.floats(0, 1))
@example(seed=0, kind="blobs", n=2, h=112, w=112, fd=7 / 111, fg=55 / 111)
def test_smooth_heatmap(device: str, seed: int, kind: str, n: int, h: int, w: int, fd: float,
                        fg: float) -> None:
    side = min(h, w)
    dsize, gsize = 1 + round(fd * min(side - 1, 19)), 1 + round(fg * (side - 1))
    maps = random_maps(seed, kind, n, h, w)
    out = back(kernels.smooth_heatmap(as_tensor(maps, device), dsize, gsize), device)
    ours = kernels.smooth_heatmap(maps, dsize, gsize)
    g = gaussian(dilate(min_max(maps), dsize, dsize, "ellipse"), gsize, 56 / 8.5)
    ranges = g.max(axis=(1, 2)) - g.min(axis=(1, 2))
    for i in range(n):
        assert float(np.abs(out[i] - ours[i]).max()) * ranges[i] <= 1e-6


@pytest.mark.parametrize("device", DEVICES)
def test_one_map_gives_an_unbatched_tensor(device: str) -> None:
    maps = random_maps(1, "blobs", 1, 112, 112)
    t = as_tensor(maps[0], device)
    assert kernels.smooth_heatmap(t).shape == (112, 112)
    assert kernels.dilate(t).shape == (112, 112)
    threshold, mask = kernels.otsu(t)
    assert threshold.shape == () and mask.shape == (112, 112)


def test_results_carry_no_gradient() -> None:
    maps = torch.rand(1, 64, 64, requires_grad=True)
    assert not kernels.gaussian(maps, 9, 2.0).requires_grad
