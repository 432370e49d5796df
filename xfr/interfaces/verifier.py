"""The verifier contract: aligned faces in, embeddings, distances and a decision out.

Paper Sec. 3.1 ("Face Verification Pipeline"): probe and gallery go through the model, their
embeddings are compared by the squared L2 distance of the L2-normalised embeddings, and the pair
is accepted when that distance is below the verifier's threshold.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Verifier(Protocol):
    """Any face verifier, a ViT or a black box.

    Images are ``(N, 3, 112, 112)`` float tensors of raw RGB values in 0..255 (aligned crops,
    see :mod:`xfr.align`). Embeddings are ``(N, D)`` and L2-normalised.
    """

    #: Registered name of the verifier kind (e.g. ``"face-vit"``, ``"sface"``).
    name: str
    #: Decision threshold on :meth:`distance`: below it the pair is "positive" (same person).
    threshold: float
    #: Input side (pixels) of the aligned square crops the verifier expects.
    input_size: int

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Return the L2-normalised embeddings ``(N, D)`` of ``images`` ``(N, 3, S, S)``."""
        ...

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Row-wise distance ``(N,)`` of two embedding batches (squared L2 by default)."""
        ...


@runtime_checkable
class ViTVerifier(Verifier, Protocol):
    """A verifier with a Vision Transformer inside, which attention generators can open.

    ``backbone`` follows timm's ``VisionTransformer`` layout: ``patch_embed`` (images after
    :meth:`preprocess` -> ``(N, L, C)`` tokens), ``cls_token``, ``pos_embed``, ``blocks``
    (timm ``Block``: ``norm1``, ``attn`` with ``qkv``/``proj``/``num_heads``/``scale``,
    ``norm2``, ``mlp`` with ``fc1``/``act``/``fc2``) and ``norm``. The embedding is the CLS token
    after ``norm`` (paper Sec. 3.1; docs/method.md, "The face ViT").
    """

    backbone: torch.nn.Module
    #: Token grid (rows, cols) of the patch tokens, e.g. ``(14, 14)``.
    grid_size: tuple[int, int]

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Map 0..255 RGB images to the backbone's input (identity for the Face Transformer)."""
        ...

    def class_logits(self, features: torch.Tensor) -> torch.Tensor | None:
        """Identity logits of the training head for CLS ``features``, or ``None`` without one."""
        ...
