"""Attention rollout (Abnar & Zuidema 2020) and the product of per-block matrices it shares with
ViT-LRP (paper Sec. 3.1; docs/method.md, "Rollout").

Two variants:

- ``"authors"`` (default, the paper's code): raw attention of each block, heads fused by their
  mean, the lowest 90 % of the entries of each ``T x T`` matrix set to 0 except the CLS->CLS
  entry, which the authors' code never zeroes (``discard_cls=True`` zeroes it too), then the
  product of ``(A + I)`` over the blocks, without row normalisation, starting at block 0.
- ``"abnar"`` (Abnar & Zuidema's original): heads fused by their mean, ``(A + I) / 2``
  row-normalised, multiplied over the blocks (nothing discarded unless asked).

The map is the CLS row of the product over the patch tokens. Only that row is needed, so the
product is evaluated from the left, ``e_0^T M_{L-1} ... M_0``: ``O(L T^2)`` instead of
``O(L T^3)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from xfr_plugins.attention.base import AttentionMapGenerator
from xfr_plugins.attention.options import HEAD_FUSIONS, VARIANTS, RolloutOptions
from xfr_plugins.attention.tracing import run_vit

__all__ = [
    "HEAD_FUSIONS",
    "VARIANTS",
    "Rollout",
    "cls_rollout",
    "discard_lowest",
    "fuse_heads",
]

def fuse_heads(attention: torch.Tensor, how: str = "mean") -> torch.Tensor:
    """``(N, H, T, T)`` -> ``(N, T, T)`` by the mean, max or min over heads."""
    if how == "mean":
        return attention.mean(dim=1)
    if how == "max":
        return attention.amax(dim=1)
    if how == "min":
        return attention.amin(dim=1)
    raise ValueError(f"head_fusion must be one of {HEAD_FUSIONS}, got {how!r}")


def discard_lowest(matrices: torch.Tensor, ratio: float, *, keep_cls: bool = True) -> torch.Tensor:
    """Zero the lowest ``int(ratio * T * T)`` entries of each ``(T, T)`` matrix of ``(N, T, T)``.

    The entries are those ``torch.topk(..., largest=False)`` would pick, computed as the
    complement of the ``T*T - k`` highest (where values tie at the boundary, which tied entry
    goes may differ). With ``keep_cls`` (the authors' rule, docs/method.md "Rollout") the
    CLS->CLS entry ``[0, 0]`` is never zeroed even when it is among the lowest, so one entry
    fewer is discarded then; ``keep_cls=False`` zeroes it like any other.
    """
    if ratio <= 0:
        return matrices
    n = matrices.shape[0]
    flat = matrices.reshape(n, -1)
    k = int(flat.shape[1] * ratio)
    if k <= 0:
        return matrices
    # the T*T - k highest: 5x faster than the k lowest at the authors' ratio of 0.9
    highest = flat.topk(flat.shape[1] - k, dim=1, largest=True).indices
    drop = torch.ones_like(flat, dtype=torch.bool).scatter_(1, highest, False)
    if keep_cls:
        drop[:, 0] = False
    return flat.masked_fill(drop, 0.0).reshape(matrices.shape)


def cls_rollout(
    matrices: Sequence[torch.Tensor], *, add_identity: bool = True, row_normalize: bool = False,
    halve: bool = False,
) -> torch.Tensor:
    """CLS row ``(N, T)`` of ``prod_{i = L-1 .. 0} M_i`` with ``M_i = A_i (+ I) (/ 2)``.

    ``matrices`` are the per-block ``(N, T, T)`` matrices in forward order (block 0 first);
    ``row_normalize`` divides each ``M_i`` by its row sums (guarded by 1e-9).
    """
    if not matrices:
        raise ValueError("rollout needs at least one block")
    n, t, _ = matrices[0].shape
    row = torch.zeros(n, 1, t, dtype=matrices[0].dtype, device=matrices[0].device)
    row[:, 0, 0] = 1.0
    eye = torch.eye(t, dtype=row.dtype, device=row.device)
    for m in reversed(matrices):
        if add_identity:
            m = m + eye
        if halve:
            m = m * 0.5
        if row_normalize:
            m = m / m.sum(dim=-1, keepdim=True).clamp(min=1e-9)
        row = row @ m
    return row[:, 0]


class Rollout(AttentionMapGenerator):
    """Attention rollout; ``variant="authors"`` (default) or ``"abnar"`` (see module docstring).

    Options: ``discard_ratio`` (default 0.9 for ``authors``, 0 for ``abnar``),
    ``discard_cls`` (whether the CLS->CLS entry may be discarded; default False, the authors'
    rule), ``head_fusion`` (mean, max, min; default mean), ``batch_size``. Independent of the
    target.
    """

    name: ClassVar[str] = "rollout"
    Options: ClassVar[type[RolloutOptions]] = RolloutOptions
    uses_target: ClassVar[bool] = False

    def configure(self, options: RolloutOptions) -> None:
        self.discard_cls = options.discard_cls
        self.variant = options.variant
        default = 0.9 if options.variant == "authors" else 0.0
        ratio = options.discard_ratio
        self.discard_ratio = float(default if ratio is None else ratio)
        self.head_fusion = options.head_fusion

    def patch_scores(
        self, verifier: Any, images: torch.Tensor, target: str, reference: torch.Tensor | None
    ) -> torch.Tensor:
        def keep(probs: torch.Tensor) -> torch.Tensor:
            return discard_lowest(fuse_heads(probs, self.head_fusion), self.discard_ratio,
                                  keep_cls=not self.discard_cls)

        trace = run_vit(verifier, images, keep_attention=keep)
        abnar = self.variant == "abnar"
        row = cls_rollout(trace.attentions, row_normalize=abnar, halve=abnar)
        return row[:, trace.num_prefix:]
