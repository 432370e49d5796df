"""The heatmap kernels of the paper: Otsu masks, mask combination, dilation, Gaussian smoothing.

These are the image operations of the paper's Sec. 3.2-3.3 as its authors' code runs them
(docs/method.md): Otsu on ``uint8(255 x map)``, set operations on two masks (intersection,
union, symmetric difference) and the two maps combined inside such a mask, and the "smooth"
chain (min-max -> 8x8 elliptical dilation -> Gaussian of size 56, sigma 56 / 8.5 -> min-max)
applied to each final heatmap. The kernels speak of set operations only: which operation each
of the paper's mask strategies is (OIM, UM, N-IUM) is said by the mask plugins.

Every function takes a batch ``[N, H, W]`` or one ``[H, W]`` image (returned unbatched), as
NumPy arrays or torch tensors, and returns the same kind:

- NumPy arrays run in the compiled kernels (``xfr._kernels``, C++17): the GIL is released and
  the images are spread over :func:`get_num_threads` threads (default: the CPUs this process
  may use; change it with :func:`set_num_threads`).
- torch tensors (CPU or GPU) run in an implementation made of torch operations only
  (:mod:`xfr.kernels._torch`) on the tensor's device; it agrees with the compiled kernels
  within 1e-5 (exactly for masks and thresholds). Results carry no gradient.

Inputs: maps are ``float32`` and finite; masks are ``bool`` (``uint8`` holding only 0 and 1 is
accepted too). All arrays of one call must have the same shape and be of one kind. Anything
else raises ``ValueError`` (``TypeError`` for arguments that are not arrays, tensors or numbers)
naming the problem; non-contiguous NumPy inputs are copied first.
"""

from __future__ import annotations

import math
import numbers
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np

# The paper's smoothing (Sec. 3.1), defined with the rest of its vocabulary.
from xfr.interfaces.vocabulary import DILATE_SIZE as PAPER_DILATE_SIZE
from xfr.interfaces.vocabulary import GAUSSIAN_SIGMA as PAPER_SIGMA
from xfr.interfaces.vocabulary import GAUSSIAN_SIZE as PAPER_GAUSSIAN_SIZE

if TYPE_CHECKING:
    import torch

    ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)
else:
    ArrayT = TypeVar("ArrayT")

__all__ = [
    "PAPER_DILATE_SIZE",
    "PAPER_GAUSSIAN_SIZE",
    "PAPER_SIGMA",
    "KernelCentre",
    "SetOperation",
    "combine",
    "combine_maps",
    "dilate",
    "gaussian",
    "gaussian_kernel",
    "get_num_threads",
    "otsu",
    "set_num_threads",
    "smooth_heatmap",
    "structuring_element",
]

#: A set operation on two masks: ``"and"`` (intersection), ``"or"`` (union) or ``"xor"``
#: (symmetric difference).
SetOperation = Literal["and", "or", "xor"]
ElementShape = Literal["ellipse", "rect"]
#: Where an even-sized Gaussian kernel peaks: ``"opencv"`` (symmetric, between the two middle
#: taps, ``cv2.getGaussianKernel``) or ``"authors"`` (on tap ``size // 2 - 1``, the kernel the
#: paper's authors build from ``np.mgrid[-size//2 + 1 : size//2 + 1]``; docs/method.md).
KernelCentre = Literal["opencv", "authors"]

_OPS = ("and", "or", "xor")
_SHAPES = ("ellipse", "rect")
_CENTRES = ("opencv", "authors")


# --------------------------------------------------------------------------------------------
# Threads and helpers


_NATIVE: ModuleType | None = None


def _native() -> ModuleType:
    global _NATIVE
    if _NATIVE is None:
        try:
            from xfr import _kernels
        except ImportError as exc:  # pragma: no cover - only on a broken install
            raise ImportError(
                "the compiled kernels xfr._kernels are missing: reinstall xfr "
                "(pip install --no-build-isolation -e .)"
            ) from exc
        _NATIVE = _kernels
    return _NATIVE


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (``n >= 1``) for the NumPy kernels; ``0`` restores the default."""
    n = _int(n, "n")
    if n < 0:
        raise ValueError(f"the number of threads must be >= 1 (0 restores the default), got {n}")
    _native().set_num_threads(n)


def get_num_threads() -> int:
    """Threads the NumPy kernels use (default: the CPUs this process may run on)."""
    return int(_native().get_num_threads())


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _size2(size: Any, name: str) -> tuple[int, int]:
    """``int`` or ``(width, height)`` (OpenCV's order) -> (width, height), each >= 1."""
    if isinstance(size, (tuple, list)):
        if len(size) != 2:
            raise ValueError(f"{name} must be an int or (width, height), got {size!r}")
        w, h = _int(size[0], name), _int(size[1], name)
    else:
        w = h = _int(size, name)
    if w < 1 or h < 1:
        raise ValueError(f"{name} must be >= 1, got {size!r}")
    return w, h


def _sigma(sigma: Any) -> float:
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real):
        raise TypeError(f"sigma must be a number, got {sigma!r}")
    sigma = float(sigma)
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma}")
    return sigma


def _choice(value: Any, name: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(options)}; got {value!r}")
    return str(value)


def _kind(*named: tuple[str, Any]) -> str:
    """'numpy' or 'torch' for the arrays of one call; TypeError for anything else or a mix."""
    if all(type(a) is np.ndarray for _, a in named):  # the common case, fast
        return "numpy"
    torch = sys.modules.get("torch")
    kinds = set()
    for name, a in named:
        if isinstance(a, np.ndarray):
            kinds.add("numpy")
        elif torch is not None and isinstance(a, torch.Tensor):
            kinds.add("torch")
        else:
            raise TypeError(
                f"{name} must be a numpy.ndarray or a torch.Tensor, got {type(a).__name__}"
            )
    if len(kinds) > 1:
        raise TypeError("mixed NumPy arrays and torch tensors: pass all arrays as one kind")
    return kinds.pop()


_F32, _BOOL, _U8 = np.dtype(np.float32), np.dtype(np.bool_), np.dtype(np.uint8)


def _dtype_name(a: Any) -> str:
    return str(a.dtype).replace("torch.", "")


def _batch(a: Any, name: str, what: str) -> tuple[Any, bool]:
    """Checks ndim / emptiness and returns ``(a as [N, H, W], was_single)``."""
    shape = a.shape
    if len(shape) == 2:
        a, shape = a[None], (1, *shape)
        single = True
    elif len(shape) == 3:
        single = False
    else:
        raise ValueError(f"{name} must be [N, H, W] or [H, W] {what}, got {len(shape)}-D")
    if shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (N = 0)")
    if shape[1] == 0 or shape[2] == 0:
        raise ValueError(f"{name} has empty images ({shape[1]}x{shape[2]})")
    return a, single


def _contiguous(a: np.ndarray) -> np.ndarray:
    return a if a.flags.c_contiguous and a.flags.aligned else np.ascontiguousarray(a)


def _maps(a: Any, name: str, kind: str) -> tuple[Any, bool]:
    if kind == "numpy":
        dt = a.dtype
        if dt is not _F32 and dt != _F32:
            raise ValueError(f"{name} must be float32 maps, got {_dtype_name(a)}")
        a, single = _batch(a, name, "float32 maps")
        return _contiguous(a), single
    import torch

    if a.dtype != torch.float32:
        raise ValueError(f"{name} must be float32 maps, got {_dtype_name(a)}")
    a, single = _batch(a, name, "float32 maps")
    if not bool(torch.isfinite(a).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return a, single


def _masks(a: Any, name: str, kind: str) -> tuple[Any, bool]:
    if kind == "numpy":
        dt = a.dtype
        if dt is not _BOOL and dt != _BOOL and dt != _U8:
            raise ValueError(f"{name} must be bool masks (or uint8 0/1), got {_dtype_name(a)}")
        a, single = _batch(a, name, "bool masks")
        if dt is not _BOOL and a.max() > 1:
            raise ValueError(f"{name} is uint8 with values other than 0 and 1")
        return _contiguous(a), single
    import torch

    if a.dtype not in (torch.bool, torch.uint8):
        raise ValueError(f"{name} must be bool masks (or uint8 0/1), got {_dtype_name(a)}")
    a, single = _batch(a, name, "bool masks")
    if a.dtype == torch.uint8 and bool((a > 1).any()):
        raise ValueError(f"{name} is uint8 with values other than 0 and 1")
    return a, single


def _same_shapes(*named: tuple[str, Any]) -> None:
    first_name, first = named[0]
    for name, a in named[1:]:
        if a.shape != first.shape:
            raise ValueError(
                f"{first_name} and {name} must have the same shape, got "
                f"{tuple(first.shape)} and {tuple(a.shape)}"
            )


def _fits(w: int, h: int, maps: Any, name: str) -> None:
    H, W = int(maps.shape[-2]), int(maps.shape[-1])
    if w > W or h > H:
        raise ValueError(
            f"{name} (width {w}, height {h}) is larger than the {H}x{W} images (H x W)"
        )


def _torch_impl() -> ModuleType:
    from xfr.kernels import _torch

    return _torch


# --------------------------------------------------------------------------------------------
# Kernels


def otsu(maps: ArrayT) -> tuple[ArrayT, ArrayT]:
    """Otsu threshold and mask of each map (paper Sec. 3.2; docs/method.md, "Otsu masks": "Otsu on
    uint8(255 x map), binary {0,1} mask").

    ``maps`` must lie in [0, 1] (``ValueError`` otherwise). Each map becomes 8-bit levels
    ``uint8(float32(255 * map))`` by truncation, which is what ``(255 * m).astype(np.uint8)``
    and ``np.uint8(255 * m)`` give (OpenCV's own ``convertTo`` would round instead); Otsu's
    method over 256 bins then picks a level ``t`` exactly as OpenCV's
    ``cv2.threshold(levels, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)`` does, with the same
    arithmetic and tie-breaking as OpenCV's own code (OpenCV's optional Intel IPP path may
    break an exact tie between two splits the other way; see docs/kernels.md).

    Returns ``(thresholds, masks)``: ``thresholds`` float32 ``[N]`` holds ``t`` in 0..255
    (OpenCV's return value, in level units, not map units), ``masks`` bool ``[N, H, W]`` is
    ``levels > t``. A constant map has ``t = 0``: its mask is all ``True`` unless the map is
    all below 1/255 (level 0), then all ``False`` - OpenCV's result, never NaN.
    """
    kind = _kind(("maps", maps))
    m, single = _maps(maps, "maps", kind)
    if kind == "numpy":
        thresholds, masks = _native().otsu(m)
    else:
        thresholds, masks = _torch_impl().otsu(m)
    return (thresholds[0], masks[0]) if single else (thresholds, masks)


def combine(a: ArrayT, b: ArrayT, op: SetOperation) -> ArrayT:
    """The intersection ``a AND b`` (``op="and"``), union ``a OR b`` (``"or"``) or symmetric
    difference ``a XOR b`` (``"xor"``) of two masks, e.g. the probe's and gallery's Otsu masks
    (paper Sec. 3.2-3.3: each mask strategy is one of these). Returns bool.
    """
    op = _choice(op, "op", _OPS)  # type: ignore[assignment]
    kind = _kind(("a", a), ("b", b))
    x, single = _masks(a, "a", kind)
    y, _ = _masks(b, "b", kind)
    _same_shapes(("a", x), ("b", y))
    out = _native().combine(x, y, op) if kind == "numpy" else _torch_impl().combine(x, y, op)
    return out[0] if single else out


def combine_maps(
    map_p: ArrayT, map_g: ArrayT, mask_p: ArrayT, mask_g: ArrayT, op: SetOperation
) -> ArrayT:
    """The two maps combined inside the mask ``combine(mask_p, mask_g, op)``: the heatmap
    values of a mask strategy (paper Sec. 3.2; docs/method.md, "Mask strategies").

    With B1 = ``mask_p``, B2 = ``mask_g`` the masks and A1 = ``map_p``, A2 = ``map_g`` the maps,
    a pixel of that mask gets the mean (B1 A1 + B2 A2) / 2 of the two maps where both masks are
    set, and B1 A1 + B2 A2 (the one masked map) where only one is; pixels outside get zero:

    - ``"and"`` (intersection): (B1 A1 + B2 A2) / 2 inside B1 AND B2,
    - ``"xor"`` (symmetric difference): B1 A1 + B2 A2 inside B1 XOR B2,
    - ``"or"`` (union): both, inside B1 OR B2.

    float32, bit-identical between the NumPy and torch paths.
    """
    op = _choice(op, "op", _OPS)  # type: ignore[assignment]
    kind = _kind(("map_p", map_p), ("map_g", map_g), ("mask_p", mask_p), ("mask_g", mask_g))
    a1, single = _maps(map_p, "map_p", kind)
    a2, _ = _maps(map_g, "map_g", kind)
    b1, _ = _masks(mask_p, "mask_p", kind)
    b2, _ = _masks(mask_g, "mask_g", kind)
    _same_shapes(("map_p", a1), ("map_g", a2), ("mask_p", b1), ("mask_g", b2))
    impl = _native() if kind == "numpy" else _torch_impl()
    out = impl.combine_maps(a1, a2, b1, b2, op)
    return out[0] if single else out


def dilate(
    maps: ArrayT,
    size: int | tuple[int, int] = (PAPER_DILATE_SIZE, PAPER_DILATE_SIZE),
    shape: ElementShape = "ellipse",
) -> ArrayT:
    """Grayscale dilation with an elliptical structuring element, 8x8 in the paper's chain
    (docs/method.md, "Smoothing").

    Equal to ``cv2.dilate(map, cv2.getStructuringElement(shape, size))`` with OpenCV's default
    anchor (``(width // 2, height // 2)``, which for even sizes lies right of / below the
    centre) and default border (pixels outside the image never win). ``size`` is an int or
    ``(width, height)`` in OpenCV's order, each between 1 and the image side.
    """
    shape = _choice(shape, "shape", _SHAPES)  # type: ignore[assignment]
    w, h = _size2(size, "size")
    kind = _kind(("maps", maps))
    m, single = _maps(maps, "maps", kind)
    _fits(w, h, m, "dilation size")
    if kind == "numpy":
        out = _native().dilate(m, w, h, shape)
    else:
        out = _torch_impl().dilate(m, w, h, shape)
    return out[0] if single else out


def gaussian(
    maps: ArrayT,
    size: int = PAPER_GAUSSIAN_SIZE,
    sigma: float = PAPER_SIGMA,
    centre: KernelCentre = "opencv",
) -> ArrayT:
    """Gaussian filter (paper Sec. 3.1: size 56, sigma 56 / 8.5; kernel normalised to sum 1).

    Separable correlation with :func:`gaussian_kernel` ``g`` on rows and columns, i.e. with
    the 2-D kernel ``outer(g, g)`` (sum 1), anchored at ``size // 2`` (OpenCV's default),
    reflect-101 borders (``cba|abcd|dcb``). Equal to ``cv2.filter2D(map, -1, np.outer(g, g),
    borderType=cv2.BORDER_REFLECT_101)`` within 1e-5 for maps in [0, 1]. ``size`` must be
    between 1 and the smaller image side. ``centre`` picks the taps of an even-sized kernel
    (:data:`KernelCentre`): with ``"opencv"`` its peak lies half a pixel up-left of the anchor,
    with ``"authors"`` one pixel up-left (the paper's authors' kernel).
    """
    size = _int(size, "size")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    sigma = _sigma(sigma)
    centre = _choice(centre, "centre", _CENTRES)  # type: ignore[assignment]
    kind = _kind(("maps", maps))
    m, single = _maps(maps, "maps", kind)
    _fits(size, size, m, "Gaussian size")
    if kind == "numpy":
        out = _native().gaussian(m, size, sigma, centre)
    else:
        out = _torch_impl().gaussian(m, size, sigma, centre)
    return out[0] if single else out


def smooth_heatmap(
    maps: ArrayT,
    dilate_size: int | tuple[int, int] = PAPER_DILATE_SIZE,
    gaussian_size: int = PAPER_GAUSSIAN_SIZE,
    sigma: float = PAPER_SIGMA,
    centre: KernelCentre = "opencv",
) -> ArrayT:
    """The paper's smoothing of each final heatmap (Sec. 3.1): min-max normalise ->
    :func:`dilate` (ellipse, ``dilate_size``) -> :func:`gaussian` (``gaussian_size``,
    ``sigma``, ``centre``) -> min-max normalise, fused in one pass per image.

    Min-max normalisation is ``(x - min) / (max - min)``. A map that is constant (before or
    after the smoothing) has no defined normalisation: its result is all zeros, never NaN.
    Results lie in [0, 1]. The torch path agrees within 1e-5 unless the Gaussian flattens a map
    to a range near float32 resolution (then the last min-max magnifies rounding differences).
    """
    w, h = _size2(dilate_size, "dilate_size")
    size = _int(gaussian_size, "gaussian_size")
    if size < 1:
        raise ValueError(f"gaussian_size must be >= 1, got {size}")
    sigma = _sigma(sigma)
    centre = _choice(centre, "centre", _CENTRES)  # type: ignore[assignment]
    kind = _kind(("maps", maps))
    m, single = _maps(maps, "maps", kind)
    _fits(w, h, m, "dilate_size")
    _fits(size, size, m, "gaussian_size")
    if kind == "numpy":
        out = _native().smooth_heatmap(m, w, h, size, sigma, centre)
    else:
        out = _torch_impl().smooth_heatmap(m, w, h, size, sigma, centre)
    return out[0] if single else out


def gaussian_kernel(
    size: int = PAPER_GAUSSIAN_SIZE, sigma: float = PAPER_SIGMA, centre: KernelCentre = "opencv"
) -> np.ndarray:
    """The 1-D taps ``g`` of :func:`gaussian` (float32, sum 1): ``g[i] ~ exp(-(i - c)^2 /
    (2 sigma^2))`` with ``c = (size - 1) / 2`` (``"opencv"``, the formula of
    ``cv2.getGaussianKernel``) or ``c = (size + 1) // 2 - 1`` (``"authors"``: the offsets
    ``np.mgrid[-size//2 + 1 : size//2 + 1]``, -27 .. 28 for size 56). The 2-D kernel is
    ``np.outer(g, g)``."""
    size = _int(size, "size")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    centre = _choice(centre, "centre", _CENTRES)  # type: ignore[assignment]
    return _native().gaussian_kernel(size, _sigma(sigma), centre)


def structuring_element(
    size: int | tuple[int, int] = (PAPER_DILATE_SIZE, PAPER_DILATE_SIZE),
    shape: ElementShape = "ellipse",
) -> np.ndarray:
    """The structuring element of :func:`dilate`: bool ``[height, width]``, equal to
    ``cv2.getStructuringElement(cv2.MORPH_ELLIPSE or MORPH_RECT, (width, height))``."""
    shape = _choice(shape, "shape", _SHAPES)
    w, h = _size2(size, "size")
    return _native().structuring_element(shape, w, h).astype(bool)
