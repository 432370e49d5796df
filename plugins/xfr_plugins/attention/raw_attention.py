"""Raw attention: the CLS token's attention over the patch tokens in one block (by default the
last), heads fused by their mean (paper Sec. 2, the simplest propagation-free map).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from xfr_plugins.attention.base import AttentionMapGenerator
from xfr_plugins.attention.options import RawAttentionOptions
from xfr_plugins.attention.rollout import fuse_heads
from xfr_plugins.attention.tracing import run_vit

__all__ = ["RawAttention"]


class RawAttention(AttentionMapGenerator):
    """``attention``: CLS row of block ``block``'s (default -1, the last) head-fused attention.

    Independent of the target.
    """

    name: ClassVar[str] = "attention"
    Options: ClassVar[type[RawAttentionOptions]] = RawAttentionOptions
    uses_target: ClassVar[bool] = False

    def configure(self, options: RawAttentionOptions) -> None:
        self.block = options.block
        self.head_fusion = options.head_fusion

    def patch_scores(
        self, verifier: Any, images: torch.Tensor, target: str, reference: torch.Tensor | None
    ) -> torch.Tensor:
        depth = len(verifier.backbone.blocks)
        if not -depth <= self.block < depth:
            raise ValueError(f"block {self.block} out of range for a depth-{depth} ViT")

        def keep(probs: torch.Tensor) -> torch.Tensor:
            return fuse_heads(probs[:, :, :1], self.head_fusion)[:, 0]

        trace = run_vit(verifier, images, keep_attention=keep)
        return trace.attentions[self.block][:, trace.num_prefix:]
