"""Relevance propagation through a timm-structured ViT (Chefer, Gur & Wolf 2021, Sec. 3.2).

Starting from the target's read-out (:mod:`targets`), relevance goes back through the final
LayerNorm (and timm's ``fc_norm``, if any; passed through) to the CLS token of the last block's
output, then block by block:

    z = y + ls2(mlp(norm2(y)))        residual split (conserving), MLP: fc2, GELU, fc1
    y = x + ls1(attn(norm1(x)))       residual split, attention: proj, A @ v, q @ k^T, qkv

The relevance of the attention probabilities ``A`` of each block (the "cam" of Chefer et al.) is
handed to ``on_attention`` as soon as it is known, so callers reduce it at once (e.g. mean over
heads) and nothing of size ``depth x N x H x T x T`` is held. The block activations come from
the forward when it kept them (``run_vit(keep_activations=True)``, what the generators do: one
forward pass less) and are otherwise recomputed from each block's stored input
(:func:`tracing.block_forward`). In the last block only the CLS token carries relevance, so its
MLP and attention output are propagated for that token alone; an attention map stops at block
0's attention (:func:`attention_relevance`). Relevance down to the pixels, which the maps never
need, is the conservation check of the tests (``tests/input_relevance.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from torch import nn

from xfr_plugins.attention.base import AttentionMapGenerator
from xfr_plugins.attention.lrp import (
    add_relevance,
    clone_relevance,
    linear_alpha_beta,
    matmul_relevance,
    readout_relevance,
    safe_divide,
)
from xfr_plugins.attention.options import PAPER_ALPHA, START, RelevanceOptions
from xfr_plugins.attention.targets import Readout
from xfr_plugins.attention.tracing import BlockActivations, Trace, block_forward

__all__ = [
    "PAPER_ALPHA", "START", "RelevanceGenerator", "RelevanceResult", "attention_relevance",
    "block_relevance", "propagate", "propagate_features",
]



@dataclass
class RelevanceResult:
    """Relevance of the tokens entering block 0, with per-layer totals for conservation checks."""

    start: torch.Tensor  #: (N,) relevance put on the target
    features: torch.Tensor  #: (N, D) relevance of the CLS features
    tokens: torch.Tensor  #: (N, T, C) relevance of block 0's input
    #: per block (in forward order): (N,) totals at the block's input, after its attention
    #: residual (``y``) and at its output (``z``)
    block_totals: list[dict[str, torch.Tensor]] = field(default_factory=list)


def _total(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).sum(-1)


def block_relevance(
    block: nn.Module,
    x: torch.Tensor,
    relevance: torch.Tensor,
    alpha: float,
    on_attention: Callable[[torch.Tensor], None] | None = None,
    *,
    acts: BlockActivations | None = None,
    cls_only: bool = False,
    to_input: bool = True,
) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
    """Relevance of the input ``x`` of one pre-norm block from that of its output.

    ``acts``: the block's activations from the forward (:func:`tracing.run_vit` with
    ``keep_activations``); recomputed from ``x`` when absent. ``cls_only``: the output's
    relevance is zero outside token 0 (the last block: the embedding is the CLS token), so the
    MLP, the output projection and the attention rows are computed for that token alone; the
    other tokens' terms would be exact zeros. ``to_input=False``: stop once the attention
    relevance is handed to ``on_attention`` (block 0 of an attention map, which needs nothing
    below it); the input's relevance is ``None`` then.
    """
    if acts is None:
        _, _, acts = block_forward(block, x, keep=True)
    assert acts is not None
    attn, mlp = block.attn, block.mlp
    totals = {"output": _total(relevance)}
    rows = slice(0, 1) if cls_only else slice(None)
    x_rows, y_rows = acts.x[:, rows], acts.y[:, rows]
    # z = y + m
    r_y, r_m = add_relevance(y_rows, acts.m[:, rows], relevance[:, rows])
    # m = ls2(fc2(norm(act(fc1(h2))))): LayerScale, norm and GELU pass relevance through
    r_g = linear_alpha_beta(acts.g[:, rows], mlp.fc2.weight, r_m, alpha)
    r_h2 = linear_alpha_beta(acts.h2[:, rows], mlp.fc1.weight, r_g, alpha)
    r_y = clone_relevance(y_rows, r_y, r_h2)  # norm2 passes through; the two uses of y add up
    totals["residual"] = _total(r_y)
    # y = x + a
    r_x, r_a = add_relevance(x_rows, acts.a[:, rows], r_y)
    r_ctx = linear_alpha_beta(acts.context[:, rows], attn.proj.weight, r_a, alpha)
    n, t_rows, _ = r_ctx.shape
    heads, head_dim = attn.num_heads, attn.head_dim
    r_ctx = r_ctx.reshape(n, t_rows, heads, head_dim).transpose(1, 2)  # (N, H, rows, d)
    r_probs, r_v = matmul_relevance(acts.probs[:, :, rows], acts.v, r_ctx)
    if on_attention is not None:
        on_attention(_rows_to_tokens(r_probs, acts.probs.shape[-2], 2) if cls_only
                     else r_probs)
    if not to_input:
        return None, totals
    # softmax (and its scale) passes relevance through to q k^T
    r_q, r_kt = matmul_relevance(acts.q[:, :, rows], acts.k.transpose(-2, -1), r_probs)
    if cls_only:
        r_q = _rows_to_tokens(r_q, acts.q.shape[-2], 2)
    t = acts.q.shape[-2]
    r_qkv = torch.stack([r_q, r_kt.transpose(-2, -1), r_v])  # (3, N, H, T, d)
    r_qkv = r_qkv.permute(1, 3, 0, 2, 4).reshape(n, t, 3 * heads * head_dim)
    r_h1 = linear_alpha_beta(acts.h1, attn.qkv.weight, r_qkv, alpha)
    if cls_only:
        r_x = _rows_to_tokens(r_x, t, 1)
    r_x = clone_relevance(acts.x, r_x, r_h1)
    totals["input"] = _total(r_x)
    return r_x, totals


def _rows_to_tokens(first: torch.Tensor, tokens: int, dim: int) -> torch.Tensor:
    """``first`` (token 0's relevance along ``dim``) padded with the other tokens' zeros."""
    shape = list(first.shape)
    shape[dim] = tokens
    out = first.new_zeros(shape)
    out.narrow(dim, 0, 1).copy_(first)
    return out


def _start(target: Readout, start: Literal["unit", "score"], alpha: float) -> tuple[
    torch.Tensor, torch.Tensor
]:
    """The relevance put on the target score and, through the read-out, on the features."""
    if start not in START:
        raise ValueError(f"start must be one of {START}, got {start!r}")
    if start == "unit":
        r0 = torch.ones_like(target.score.detach())
    else:
        r0 = target.score.detach().clone()
    return r0, readout_relevance(target.inputs, target.direction, r0, alpha)


def propagate(
    backbone: nn.Module,
    trace: Trace,
    target: Readout,
    *,
    alpha: float = 1.0,
    start: Literal["unit", "score"] = "unit",
    on_attention: Callable[[int, torch.Tensor], None] | None = None,
) -> RelevanceResult:
    """Propagate the target's relevance down to block 0's input tokens.

    ``on_attention(block_index, R_A)`` receives each block's attention relevance
    ``(N, H, T, T)``, last block first. Runs without autograd.
    """
    with torch.no_grad():
        r0, r_feat = _start(target, start, alpha)
        r, totals = propagate_features(backbone, trace, r_feat, alpha=alpha,
                                       on_attention=on_attention)
    return RelevanceResult(start=r0, features=r_feat, tokens=r, block_totals=totals)


def attention_relevance(
    backbone: nn.Module,
    trace: Trace,
    target: Readout,
    *,
    alpha: float,
    start: Literal["unit", "score"],
    on_attention: Callable[[int, torch.Tensor], None],
) -> None:
    """What an attention map needs of :func:`propagate`: each block's attention relevance,
    handed to ``on_attention`` (the same values), and nothing below block 0's attention."""
    with torch.no_grad():
        _, r_feat = _start(target, start, alpha)
        _down_the_blocks(backbone, trace, r_feat, alpha, on_attention, to_input=False)


def propagate_features(
    backbone: nn.Module,
    trace: Trace,
    features_relevance: torch.Tensor,
    *,
    alpha: float = 1.0,
    on_attention: Callable[[int, torch.Tensor], None] | None = None,
) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Relevance of block 0's input tokens ``(K, T, C)`` from that of the CLS features
    ``(K, D)``: the second half of :func:`propagate`, for callers that start from their own
    feature relevance (BiLRP: one relevance vector per embedding dimension).

    ``trace`` holds ``K`` images, or one image whose activations serve all ``K`` relevance
    vectors (every rule broadcasts over the batch: the forward is recomputed once, not ``K``
    times). Also returns the per-block totals, in forward order. Runs without autograd.
    """
    with torch.no_grad():
        r, totals = _down_the_blocks(backbone, trace, features_relevance, alpha, on_attention,
                                     to_input=True)
    assert r is not None
    return r, totals


def _down_the_blocks(
    backbone: nn.Module,
    trace: Trace,
    features_relevance: torch.Tensor,
    alpha: float,
    on_attention: Callable[[int, torch.Tensor], None] | None,
    to_input: bool,
) -> tuple[torch.Tensor | None, list[dict[str, torch.Tensor]]]:
    """From the CLS features' relevance down the blocks, last first (see the callers)."""
    out = trace.output.detach()
    k = features_relevance.shape[0]
    if out.shape[0] not in (1, k):
        raise ValueError(f"{k} relevance vectors for a trace of {out.shape[0]} images")
    r: torch.Tensor | None = out.new_zeros((k, *out.shape[1:]))
    assert r is not None
    # The final norm (and the L2 normalisation) pass relevance through; selecting the CLS
    # token is a division by it and back (the reference code's ``IndexSelect`` rule:
    # x * R / (x + 1e-9), zero where x == 0).
    cls = backbone.norm(out)[:, 0]
    r[:, 0] = cls * safe_divide(features_relevance.to(cls), cls)
    totals: list[dict[str, torch.Tensor]] = []
    blocks = list(backbone.blocks)
    last = len(blocks) - 1
    for i in range(last, -1, -1):
        callback = None
        if on_attention is not None:

            def callback(r_probs: torch.Tensor, i: int = i) -> None:
                on_attention(i, r_probs)

        assert r is not None
        acts = None if trace.activations is None else trace.activations[i]
        r, block_totals = block_relevance(
            blocks[i], trace.block_inputs[i].detach(), r, alpha, callback, acts=acts,
            cls_only=i == last, to_input=to_input or i > 0)
        totals.append(block_totals)
    totals.reverse()
    return r, totals


class RelevanceGenerator(AttentionMapGenerator):
    """Base of the LRP-based generators (``vit-lrp``, ``nograd-lrp``): options ``alpha`` (the
    alpha-beta rule, default 0.5 as the paper's authors ran it; 1 is Chefer et al.'s value),
    ``start`` (the relevance the propagation starts from, one of :data:`START`),
    ``precision`` (default ``"float64"``: relevance propagation cancels large terms, and in
    float32 the maps of some faces change their rank order; ``"model"`` computes in the
    model's dtype) and ``batch_size`` (:class:`~xfr_plugins.attention.options.RelevanceOptions`).
    """

    Options: ClassVar[type[RelevanceOptions]] = RelevanceOptions

    def configure(self, options: RelevanceOptions) -> None:
        self.alpha = float(options.alpha)
        self.start = options.start
