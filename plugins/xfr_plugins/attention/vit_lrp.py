"""ViT-LRP: Chefer, Gur & Wolf's transformer attribution (CVPR 2021), as the paper's authors ran
it (paper Sec. 3.1 and Tab. 1; docs/method.md, "ViT-LRP and No-Grad ViT-LRP").

For each block ``b``, with ``A_b`` its attention probabilities ``(H, T, T)``, ``grad A_b`` the
gradient of the target score with respect to them and ``R_b`` their LRP relevance
(:mod:`relevance`, rules of :mod:`lrp`)::

    Abar_b = mean_h max(0, grad A_b * R_b)
    C      = (Abar_{L-1} + I) ... (Abar_0 + I)        no row normalisation, from block 0

and the map is the CLS row of ``C`` over the patch tokens. ``alpha`` is the alpha-beta rule's
(default 0.5, as the authors ran it; Chefer et al.'s is 1). The relevance starts as one-hot 1
on the target (``start="unit"``, Chefer et al.'s code) or as the target score itself
(``start="score"``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from xfr_plugins.attention.options import ViTLRPOptions
from xfr_plugins.attention.relevance import RelevanceGenerator, attention_relevance
from xfr_plugins.attention.rollout import cls_rollout
from xfr_plugins.attention.targets import readout
from xfr_plugins.attention.tracing import run_vit

__all__ = ["ViTLRP", "attention_gradients"]


def attention_gradients(score: torch.Tensor, attentions: list[torch.Tensor]) -> list[torch.Tensor]:
    """Gradients of ``score.sum()`` w.r.t. each block's probabilities; frees the graph.

    ``torch.autograd.grad`` returns them without accumulating into any ``.grad``.
    """
    if not score.requires_grad:
        raise ValueError(
            "the target score does not depend on the attention differentiably "
            "(did class_logits detach its input?)"
        )
    grads = torch.autograd.grad(score.sum(), attentions, allow_unused=True)
    pairs = zip(grads, attentions, strict=True)
    return [torch.zeros_like(a) if g is None else g for g, a in pairs]


class ViTLRP(RelevanceGenerator):
    """``vit-lrp``: transformer attribution. Options ``alpha``, ``start``, ``batch_size``."""

    name: ClassVar[str] = "vit-lrp"
    Options: ClassVar[type[ViTLRPOptions]] = ViTLRPOptions

    def patch_scores(
        self, verifier: Any, images: torch.Tensor, target: str, reference: torch.Tensor | None
    ) -> torch.Tensor:
        trace = run_vit(verifier, images, requires_grad=True, keep_activations=True)
        target_readout = readout(verifier, trace.features, target, reference)
        grads = attention_gradients(target_readout.score, trace.attentions)
        trace.attentions = []
        cams: list[torch.Tensor] = [torch.empty(0)] * len(grads)

        def combine(i: int, r_probs: torch.Tensor) -> None:
            cams[i] = (grads[i] * r_probs).clamp(min=0).mean(dim=1)
            grads[i] = torch.empty(0)  # release as we go

        attention_relevance(verifier.backbone, trace, target_readout, alpha=self.alpha,
                            start=self.start, on_attention=combine)
        return self.rollout(cams)[:, trace.num_prefix:]

    def rollout(self, cams: list[torch.Tensor]) -> torch.Tensor:
        """``C``'s CLS row from the per-block ``Abar_b`` (module docstring); the one place a
        variant changes how the blocks combine."""
        return cls_rollout(cams)
