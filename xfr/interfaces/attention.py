"""The attention-generator contract (paper Sec. 3.1, "Attention Map Generation")."""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

import torch

from xfr.interfaces.verifier import ViTVerifier

#: What the propagation explains: the arg-max identity logit of the training head (the paper's
#: choice), the embedding itself, the cosine similarity to a reference embedding (the other face
#: of the pair), or ``"auto"`` (logit when the verifier has a head, else embedding).
AttentionTarget = Literal["auto", "logit", "embedding", "similarity"]


@runtime_checkable
class AttentionGenerator(Protocol):
    """Produces one attention map per image from a ViT verifier."""

    name: str

    def __call__(
        self,
        verifier: ViTVerifier,
        images: torch.Tensor,
        target: AttentionTarget = "auto",
        reference: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Return maps ``(N, S, S)`` in [0, 1], image-sized, finite, on ``images``' device.

        ``images`` is ``(N, 3, S, S)`` 0..255 RGB. ``reference`` ``(N, D)`` is required for
        ``target="similarity"``. The model is left exactly as found: no hooks, no retained
        graph, no ``requires_grad`` change.
        """
        ...
