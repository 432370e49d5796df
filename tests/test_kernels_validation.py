"""Bad input to xfr.kernels is a ValueError (TypeError for non-arrays) naming the problem, on
the NumPy path, the torch path and the raw compiled module alike; never a crash or a NaN."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from xfr import _kernels, kernels

MAP = np.random.default_rng(0).random((2, 16, 16), dtype=np.float32)
MASK = MAP > 0.5


def with_value(value: float) -> np.ndarray:
    bad = MAP.copy()
    bad[1, 3, 4] = value
    return bad


def calls(maps: Any, masks: Any) -> dict[str, Callable[[], Any]]:
    """Every kernel called on maps (and masks) of one kind."""
    return {
        "otsu": lambda: kernels.otsu(maps),
        "dilate": lambda: kernels.dilate(maps),
        "gaussian": lambda: kernels.gaussian(maps, 5, 1.0),
        "smooth_heatmap": lambda: kernels.smooth_heatmap(maps, 3, 5, 1.0),
        "combine_maps": lambda: kernels.combine_maps(maps, maps, masks, masks, "or"),
    }


KERNELS = list(calls(MAP, MASK))
KINDS = {"numpy": lambda a: a, "torch": torch.from_numpy}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_in_maps(kind: str, kernel: str, value: float) -> None:
    to = KINDS[kind]
    with pytest.raises(ValueError, match="NaN or inf"):
        calls(to(with_value(value)), to(MASK))[kernel]()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.uint8])
def test_maps_of_the_wrong_dtype(kind: str, kernel: str, dtype: type) -> None:
    to = KINDS[kind]
    with pytest.raises(ValueError, match="float32"):
        calls(to(MAP.astype(dtype)), to(MASK))[kernel]()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("shape", [(5,), (1, 2, 16, 16), ()])
def test_maps_of_the_wrong_ndim(kind: str, kernel: str, shape: tuple[int, ...]) -> None:
    to = KINDS[kind]
    maps = np.zeros(shape, dtype=np.float32)
    with pytest.raises(ValueError, match=r"\[N, H, W\] or \[H, W\]"):
        calls(to(maps), to(np.zeros(shape, dtype=bool)))[kernel]()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(("shape", "message"), [((0, 16, 16), "empty batch"),
                                                ((2, 0, 16), "empty images"),
                                                ((16, 0), "empty images")])
def test_empty_input(kind: str, kernel: str, shape: tuple[int, ...], message: str) -> None:
    to = KINDS[kind]
    with pytest.raises(ValueError, match=message):
        calls(to(np.zeros(shape, np.float32)), to(np.zeros(shape, bool)))[kernel]()


@pytest.mark.parametrize("kind", KINDS)
def test_mismatched_shapes(kind: str) -> None:
    to = KINDS[kind]
    with pytest.raises(ValueError, match="same shape"):
        kernels.combine(to(MASK), to(MASK[:, :, :8]), "and")
    with pytest.raises(ValueError, match="same shape"):
        kernels.combine_maps(to(MAP), to(MAP[:1]), to(MASK), to(MASK), "and")
    with pytest.raises(ValueError, match="same shape"):
        kernels.combine_maps(to(MAP), to(MAP), to(MASK), to(MASK[:, :15]), "xor")


@pytest.mark.parametrize("kind", KINDS)
def test_masks_of_the_wrong_dtype_or_values(kind: str) -> None:
    to = KINDS[kind]
    with pytest.raises(ValueError, match="bool"):
        kernels.combine(to(MAP), to(MASK), "or")
    with pytest.raises(ValueError, match="bool"):
        kernels.combine_maps(to(MAP), to(MAP), to(MASK.astype(np.int64)), to(MASK), "or")
    with pytest.raises(ValueError, match="other than 0 and 1"):
        kernels.combine(to(MASK.astype(np.uint8) * 2), to(MASK), "xor")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("value", [-0.01, 1.5])
def test_otsu_needs_maps_in_0_1(kind: str, value: float) -> None:
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        kernels.otsu(KINDS[kind](with_value(value)))


@pytest.mark.parametrize("kind", KINDS)
def test_sizes_below_1_or_beyond_the_image(kind: str) -> None:
    maps = KINDS[kind](MAP[:, :, :12])  # 16 x 12 images
    for bad in (0, -3, (0, 4), (4, 0)):
        with pytest.raises(ValueError, match=">= 1"):
            kernels.dilate(maps, bad)
    for bad in (13, (13, 4), (4, 17)):
        with pytest.raises(ValueError, match="larger than the 16x12 images"):
            kernels.dilate(maps, bad)
    with pytest.raises(ValueError, match="larger than the 16x12 images"):
        kernels.gaussian(maps, 13, 2.0)
    with pytest.raises(ValueError, match=">= 1"):
        kernels.gaussian(maps, 0, 2.0)
    with pytest.raises(ValueError, match="gaussian_size .* larger"):
        kernels.smooth_heatmap(maps)  # 56 on 16 x 12
    with pytest.raises(ValueError, match="dilate_size .* larger"):
        kernels.smooth_heatmap(maps, dilate_size=20, gaussian_size=3)
    for sigma in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="sigma"):
            kernels.gaussian(maps, 3, sigma)
    with pytest.raises(ValueError, match=r"\(width, height\)"):
        kernels.dilate(maps, (3, 3, 3))


def test_bad_names_and_types() -> None:
    with pytest.raises(ValueError, match="op must be one of and, or, xor"):
        kernels.combine(MASK, MASK, "nand")
    # the kernels speak of set operations, not of the paper's strategies
    for op in ("oim", "intersection", "AND"):
        with pytest.raises(ValueError, match="op must be one of and, or, xor"):
            kernels.combine_maps(MAP, MAP, MASK, MASK, op)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape must be one of ellipse, rect"):
        kernels.dilate(MAP, 3, "cross")
    with pytest.raises(TypeError, match="numpy.ndarray or a torch.Tensor, got list"):
        kernels.gaussian(MAP.tolist(), 3, 1.0)
    with pytest.raises(TypeError, match="mixed NumPy arrays and torch tensors"):
        kernels.combine(MASK, torch.from_numpy(MASK), "and")
    with pytest.raises(TypeError, match="integer"):
        kernels.gaussian(MAP, 3.5, 1.0)
    with pytest.raises(TypeError, match="integer"):
        kernels.dilate(MAP, True)
    with pytest.raises(TypeError, match="sigma must be a number"):
        kernels.gaussian(MAP, 3, "2")
    with pytest.raises(ValueError, match="threads"):
        kernels.set_num_threads(-1)


def test_the_raw_compiled_module_checks_too() -> None:
    # No call straight into xfr._kernels may crash the interpreter either.
    with pytest.raises(ValueError, match="float32"):
        _kernels.gaussian(MAP.astype(np.float64), 3, 1.0)
    with pytest.raises(ValueError, match="3-D"):
        _kernels.dilate(MAP[0], 3, 3, "rect")
    with pytest.raises(ValueError, match="C-contiguous"):
        _kernels.otsu(MAP[:, :, ::2])
    with pytest.raises(ValueError, match="larger than"):
        _kernels.gaussian(MAP, 17, 1.0)
    with pytest.raises(ValueError, match="larger than"):
        _kernels.smooth_heatmap(MAP, 3, 3, 300, 1.0)
    with pytest.raises(ValueError, match=">= 1"):
        _kernels.dilate(MAP, 0, 3, "ellipse")
    with pytest.raises(ValueError, match="empty batch"):
        _kernels.otsu(np.zeros((0, 4, 4), np.float32))
    with pytest.raises(ValueError, match="same shape"):
        _kernels.combine(MASK, MASK[:1], "and")
    with pytest.raises(ValueError, match="NaN or inf"):
        _kernels.smooth_heatmap(with_value(np.nan), 3, 3, 5, 1.0)
    with pytest.raises(ValueError, match="sigma"):
        _kernels.gaussian_kernel(5, 0.0)
    with pytest.raises(ValueError):
        _kernels.structuring_element("ellipse", 0, 3)
