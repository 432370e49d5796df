"""No-Grad ViT-LRP: transformer attribution without the gradients (paper Sec. 4, the paper's
best tool with OIM; docs/method.md, "Attention generators").

For each block the LRP relevance of the attention probabilities ``R_b`` (``(H, T, T)``,
:mod:`relevance`) is clamped at 0 head by head and then averaged over the heads,
``Abar_b = mean_h max(0, R_b)`` (the order of the authors' code; averaging first and clamping
after is a different rule); the map is the CLS row of ``(Abar_{L-1} + I) ... (Abar_0 + I)`` (no
row normalisation, from block 0) over the patch tokens. Options as
:class:`~xfr_plugins.attention.vit_lrp.ViTLRP`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from xfr_plugins.attention.options import NoGradLRPOptions
from xfr_plugins.attention.relevance import RelevanceGenerator, attention_relevance
from xfr_plugins.attention.rollout import cls_rollout
from xfr_plugins.attention.targets import readout
from xfr_plugins.attention.tracing import run_vit

__all__ = ["NoGradLRP"]


class NoGradLRP(RelevanceGenerator):
    """``nograd-lrp``: relevance-only transformer attribution; no autograd at all."""

    name: ClassVar[str] = "nograd-lrp"
    Options: ClassVar[type[NoGradLRPOptions]] = NoGradLRPOptions

    def patch_scores(
        self, verifier: Any, images: torch.Tensor, target: str, reference: torch.Tensor | None
    ) -> torch.Tensor:
        trace = run_vit(verifier, images, keep_attention=lambda p: p.new_empty(0),
                        keep_activations=True)
        target_readout = readout(verifier, trace.features, target, reference)
        cams: list[torch.Tensor] = [torch.empty(0)] * len(trace.block_inputs)

        def keep(i: int, r_probs: torch.Tensor) -> None:
            cams[i] = r_probs.clamp(min=0).mean(dim=1)  # clamp each head, then average

        attention_relevance(verifier.backbone, trace, target_readout, alpha=self.alpha,
                            start=self.start, on_attention=keep)
        return cls_rollout(cams)[:, trace.num_prefix:]
