"""The one check of face images, for every verifier, attention generator and explainer.

The verifier contract (:class:`xfr.interfaces.Verifier`; paper Sec. 3.1, "Face Verification
Pipeline") takes aligned probe and gallery crops: a float tensor ``(N, 3, S, S)`` of RGB values
in 0..255, ``S`` the verifier's ``input_size`` (112 for the paper's ViT). :func:`check_faces`
says so in one message, whatever is wrong, and raises xfr's own errors:
:class:`~xfr.errors.InputTypeError` (also a ``TypeError``) for something that is not a tensor
of numbers, :class:`~xfr.errors.InputError` (also a ``ValueError``) for anything else.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from xfr.errors import InputError, InputTypeError

__all__ = ["check_face_pairs", "check_faces", "faces_uint8"]

#: Values may stray this far outside 0..255 (float rounding of a blur or a resize).
RANGE_TOLERANCE = 1e-3


def _expected(size: int | None) -> str:
    side = "S" if size is None else str(size)
    return (f"expected aligned faces: a torch.Tensor (N, 3, {side}, {side}) of RGB values in "
            "0..255 (xfr.align makes them)")


def _type_name(value: object) -> str:
    t = type(value)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _size(size: object) -> int | None:
    if isinstance(size, numbers.Integral) and not isinstance(size, bool) and int(size) > 0:
        return int(size)
    return None


def check_faces(images: object, size: object = None, *, name: str = "images") -> torch.Tensor:
    """``images`` if they are aligned faces, else one clear error naming ``name``.

    Aligned faces are a tensor ``(N, 3, S, S)``, ``N >= 1``, of finite RGB values in 0..255
    (within :data:`RANGE_TOLERANCE`); ``S`` is ``size`` when that is a positive integer (the
    verifier's ``input_size``), else any side. Integer tensors (``uint8`` photos) are returned
    as ``float32``, float tensors as they are (same tensor, same dtype and device, gradients
    kept). Raises :class:`~xfr.errors.InputTypeError` for a value that is not a tensor, or a
    tensor of booleans or complex numbers, :class:`~xfr.errors.InputError` for a wrong shape,
    an empty batch, NaN or infinite values, or values outside 0..255 (normalised images).
    """
    side = _size(size)

    def fail(problem: str, error: type[InputError] = InputError) -> InputError:
        return error(f"{name}: {problem}; {_expected(side)}")

    if not isinstance(images, torch.Tensor):
        raise fail(f"got {_type_name(images)}, not a torch.Tensor", InputTypeError)
    if images.dtype == torch.bool or images.is_complex():
        raise fail(f"got a tensor of {images.dtype}, not of numbers", InputTypeError)
    shape = tuple(images.shape)
    if len(shape) != 4 or shape[1] != 3 or shape[2] != shape[3]:
        raise fail(f"got shape {shape}")
    if side is not None and shape[2] != side:
        raise fail(f"got shape {shape}: {shape[2]}x{shape[3]} images, but the verifier "
                   f"takes {side}x{side}")
    if shape[0] == 0:
        raise fail("got an empty batch (N = 0)")
    if shape[2] == 0:
        raise fail(f"got empty images (shape {shape})")
    if not images.is_floating_point():
        images = images.float()
    # one pass and one device sync: NaN propagates through min and max, so does inf
    lo, hi = torch.stack(torch.aminmax(images.detach())).tolist()
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise fail("got NaN or infinite values")
    if lo < -RANGE_TOLERANCE or hi > 255.0 + RANGE_TOLERANCE:
        raise fail(f"got values from {lo:g} to {hi:g}, outside 0..255 (normalised images? "
                   "pass the raw RGB values)")
    return images


def check_face_pairs(probes: object, galleries: object,
                     size: object = None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`check_faces` on ``probes`` and ``galleries``, which must also have one shape
    (one gallery per probe; paper Sec. 3.1: each pair is a probe and a gallery face)."""
    p = check_faces(probes, size, name="probes")
    g = check_faces(galleries, size, name="galleries")
    if p.shape != g.shape:
        raise InputError(f"probes {tuple(p.shape)} and galleries {tuple(g.shape)} must have "
                         "the same shape (one gallery per probe)")
    return p, g


def faces_uint8(images: torch.Tensor) -> np.ndarray:
    """Checked faces ``(N, 3, S, S)`` (0..255) as ``(N, S, S, 3)`` uint8, for figures and the
    saved explanation (rounded, clamped to 0..255)."""
    x = images.detach().to("cpu", torch.float32)
    return x.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
