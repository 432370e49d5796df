"""Gradient-weighted rollout (Chefer, Gur & Wolf, "Generic attention-model explainability",
ICCV 2021, eq. 5-6; paper Sec. 2's Grad-CAM-style use of attention gradients).

For each block, ``Abar_b = mean_h max(0, grad A_b * A_b)`` (the attention weighted by the
gradient of the target score), and the map is the CLS row of ``(Abar_{L-1} + I) ... (Abar_0 +
I)`` over the patch tokens (no row normalisation, from block 0). ``discard_ratio`` optionally
zeroes the lowest entries of each ``Abar_b`` first, as rollout does (default 0).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from xfr_plugins.attention.base import AttentionMapGenerator
from xfr_plugins.attention.options import GradRolloutOptions
from xfr_plugins.attention.rollout import cls_rollout, discard_lowest
from xfr_plugins.attention.targets import readout
from xfr_plugins.attention.tracing import run_vit
from xfr_plugins.attention.vit_lrp import attention_gradients

__all__ = ["GradRollout"]


class GradRollout(AttentionMapGenerator):
    """``grad-rollout``: gradient-weighted attention rollout. Options ``discard_ratio``."""

    name: ClassVar[str] = "grad-rollout"
    Options: ClassVar[type[GradRolloutOptions]] = GradRolloutOptions

    def configure(self, options: GradRolloutOptions) -> None:
        self.discard_ratio = float(options.discard_ratio)

    def patch_scores(
        self, verifier: Any, images: torch.Tensor, target: str, reference: torch.Tensor | None
    ) -> torch.Tensor:
        trace = run_vit(verifier, images, requires_grad=True)
        score = readout(verifier, trace.features, target, reference).score
        grads = attention_gradients(score, trace.attentions)
        with torch.no_grad():
            cams = [
                discard_lowest((g * a.detach()).clamp(min=0).mean(dim=1), self.discard_ratio)
                for g, a in zip(grads, trace.attentions, strict=True)
            ]
        return self.rollout(cams)[:, trace.num_prefix:]

    def rollout(self, cams: list[torch.Tensor]) -> torch.Tensor:
        """The CLS row of ``(Abar_{L-1} + I) ... (Abar_0 + I)`` (module docstring); the one
        place a variant changes how the blocks combine."""
        return cls_rollout(cams)
