"""The shared call path of every attention generator (the AttentionGenerator contract,
:mod:`xfr.interfaces.attention`; paper Sec. 3.1, "Attention Map Generation").

A generator subclass computes, for a chunk of images already on the model's device, the CLS
row of its token-to-token matrix over the patch tokens, ``(n, rows*cols)``. This base class
validates the inputs, processes the batch in chunks of ``batch_size`` images (bounded memory,
identical results to one-by-one), leaves the model as it found it, and turns the scores into
``(N, H, W)`` float32 maps in [0, 1] on the images' device (:mod:`maps`).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import nn

from xfr.interfaces.images import check_faces
from xfr_plugins.attention.maps import to_image_maps
from xfr_plugins.attention.targets import check_reference, check_target
from xfr_plugins.attention.tracing import (
    check_vit_verifier,
    move_to_model,
    patch_embed_in_eval,
)

__all__ = ["PRECISIONS", "AttentionMapGenerator", "float64_twin"]


def _check_positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{what} must be >= 1, got {value}")
    return value


#: ``precision`` option: ``"model"`` computes in the model's own dtype, ``"float64"`` in a
#: float64 copy of the verifier (docs/method.md, "Precision").
PRECISIONS = ("model", "float64")


def float64_twin(verifier: Any) -> Any:
    """A copy of ``verifier`` whose modules compute in float64 (the weights are float32 values,
    which float64 holds exactly), or ``verifier`` itself when it already does. The verifier is
    never modified; a verifier whose modules cannot be found as attributes is returned as is."""
    backbone = verifier.backbone
    param = next(backbone.parameters(), None)
    if param is None or param.dtype == torch.float64:
        return verifier
    twin = copy.deepcopy(verifier)
    for value in vars(twin).values():
        if isinstance(value, nn.Module):
            value.double()
    twin_param = next(twin.backbone.parameters(), None)
    if twin_param is None or twin_param.dtype != torch.float64:
        return verifier
    return twin


class AttentionMapGenerator(ABC):
    """Base of the built-in generators: ``generator(verifier, images, target, reference)``."""

    name: ClassVar[str]
    #: Whether the generator's maps depend on the target (raw attention and rollout do not).
    uses_target: ClassVar[bool] = True
    #: The default of the ``precision`` option.
    default_precision: ClassVar[str] = "model"

    def __init__(self, batch_size: int = 8, precision: str | None = None) -> None:
        self.batch_size = _check_positive_int(batch_size, "batch_size")
        precision = self.default_precision if precision is None else precision
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.precision = precision

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({options})"

    @abstractmethod
    def patch_scores(
        self,
        verifier: Any,
        images: torch.Tensor,
        target: str,
        reference: torch.Tensor | None,
    ) -> torch.Tensor:
        """CLS-row scores ``(n, rows*cols)`` over the patch tokens of ``images`` (model device)."""

    def __call__(
        self,
        verifier: Any,
        images: torch.Tensor,
        target: str = "auto",
        reference: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Maps ``(N, H, W)`` in [0, 1], float32, on ``images``' device (see the contract)."""
        backbone = check_vit_verifier(verifier)
        target = check_target(target)
        images = check_faces(images, getattr(verifier, "input_size", None))
        n = images.shape[0]
        ref = check_reference(target, reference, n)
        grid = tuple(int(g) for g in verifier.grid_size)
        out: list[torch.Tensor] = []
        # Runs outside any caller's inference_mode (inference tensors cannot enter autograd;
        # the float64 copy is made here too, so that its weights are ordinary tensors).
        with torch.inference_mode(False):
            if self.precision == "float64":
                verifier = float64_twin(verifier)
                backbone = verifier.backbone
            with patch_embed_in_eval(backbone):
                for start in range(0, n, self.batch_size):
                    stop = start + self.batch_size
                    chunk = move_to_model(verifier, images[start:stop]).clone()
                    chunk_ref = None
                    if ref is not None:
                        chunk_ref = ref[start:stop].to(chunk.device).clone()
                    scores = self.patch_scores(verifier, chunk, target, chunk_ref)
                    out.append(scores.detach())
        scores = torch.cat(out).to(images.device)
        return to_image_maps(scores, (grid[0], grid[1]), (images.shape[-2], images.shape[-1]))
