"""An explicit, instrumented forward of a timm-structured ViT (paper Sec. 3.1, "Attention Map
Generation").

Every attention generator needs what a plain ``forward`` hides: the attention probabilities of
each block (Rollout), their gradients with respect to a target score (ViT-LRP, grad-rollout) and
the intermediate activations that layer-wise relevance propagation divides by (ViT-LRP, No-Grad
ViT-LRP). Rather than patching the model with hooks, this module re-states the forward of timm's
``VisionTransformer`` (pre-norm ``Block``: ``x + ls1(attn(norm1(x)))``, then
``x + ls2(mlp(norm2(x)))``) with the model's own layers, keeping what it is asked to keep. The
model is never modified: no hooks, no ``requires_grad`` change, no mode change (except that a
token embedding with training-mode layers, e.g. BatchNorm, runs in eval mode for the duration
of the call and is switched back in ``finally``).

Inference semantics throughout: dropout, attention dropout, drop-path and patch dropout are
identities, whatever the module's mode (docs/method.md, "LRP rules": dropout passes relevance
unchanged).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from timm.layers import Attention
from timm.models.vision_transformer import Block
from torch import nn

__all__ = [
    "BlockActivations",
    "Trace",
    "block_forward",
    "check_vit_verifier",
    "move_to_model",
    "embed_tokens",
    "num_prefix_tokens",
    "patch_embed_in_eval",
    "run_vit",
    "vit_features",
]


@dataclass
class BlockActivations:
    """The activations of one pre-norm block that relevance propagation needs.

    Shapes: tokens ``(N, T, C)``; heads ``(N, H, T, d)``; probabilities ``(N, H, T, T)``.
    """

    x: torch.Tensor  #: block input
    h1: torch.Tensor  #: norm1(x), the qkv projection's input
    q: torch.Tensor  #: queries after q_norm (not yet scaled)
    k: torch.Tensor  #: keys after k_norm
    v: torch.Tensor  #: values
    probs: torch.Tensor  #: softmax(scale * q k^T)
    context: torch.Tensor  #: attn.norm(probs @ v), the output projection's input ``(N, T, H*d)``
    a: torch.Tensor  #: attention branch after ls1
    y: torch.Tensor  #: x + a
    h2: torch.Tensor  #: norm2(y), fc1's input
    g: torch.Tensor  #: mlp.norm(act(fc1(h2))), fc2's input
    m: torch.Tensor  #: MLP branch after ls2
    z: torch.Tensor  #: block output y + m


@dataclass
class Trace:
    """One instrumented forward: inputs of every block, kept attention, the CLS features."""

    pixels: torch.Tensor  #: the backbone's input (after the verifier's ``preprocess``)
    patches: torch.Tensor  #: token embedding output ``(N, L, C)``
    prefix: torch.Tensor  #: CLS (+ register) tokens ``(N, P, C)``
    pos: torch.Tensor | None  #: position embedding aligned to all ``T = P + L`` tokens
    block_inputs: list[torch.Tensor]  #: input of each block ``(N, T, C)``
    attentions: list[torch.Tensor]  #: each block's probabilities, after ``keep_attention``
    output: torch.Tensor  #: last block's output ``(N, T, C)``
    #: CLS token through the final norm (and timm's ``fc_norm``) ``(N, C)``: the embedding
    features: torch.Tensor
    num_prefix: int
    grid: tuple[int, int]
    #: every block's activations (``keep_activations``), so that relevance propagation does
    #: not run the forward again; ``None``: it recomputes them from ``block_inputs``
    activations: list[BlockActivations] | None = None


def _describe_missing(backbone: nn.Module) -> list[str]:
    problems: list[str] = []
    for attr in ("patch_embed", "blocks", "norm", "cls_token"):
        if not hasattr(backbone, attr):
            problems.append(f"backbone has no '{attr}'")
    if problems:
        return problems
    if backbone.cls_token is None:
        problems.append("backbone has no CLS token (class_token=False); the maps are its row")
    if getattr(backbone, "attn_pool", None) is not None:
        problems.append("attention-pool heads are not supported (the embedding must be CLS)")
    if getattr(backbone, "dynamic_img_size", False):
        problems.append("dynamic_img_size=True is not supported")
    for i, block in enumerate(backbone.blocks):
        if not isinstance(block, Block):
            problems.append(
                f"block {i} is a {type(block).__name__}, not a timm pre-norm Block"
            )
            continue
        attn = block.attn
        if not isinstance(attn, Attention):
            problems.append(f"block {i}.attn is a {type(attn).__name__}, not a timm Attention")
        elif getattr(attn, "gate", None) is not None:
            problems.append(f"block {i}.attn is gated, which is not supported")
        mlp = block.mlp
        if not all(hasattr(mlp, a) for a in ("fc1", "act", "fc2")) or not isinstance(
            mlp.fc1, nn.Linear
        ):
            problems.append(f"block {i}.mlp is a {type(mlp).__name__}, not a timm Mlp")
    return problems


def check_vit_verifier(verifier: object) -> nn.Module:
    """Return ``verifier.backbone`` after checking it follows timm's ViT layout.

    Raises ``TypeError`` naming every missing piece (a black-box verifier has no backbone).
    """
    backbone = getattr(verifier, "backbone", None)
    if not isinstance(backbone, nn.Module):
        raise TypeError(
            f"{type(verifier).__name__} is not a ViT verifier (no 'backbone' nn.Module); "
            "attention maps need a Vision Transformer"
        )
    for attr in ("preprocess", "class_logits", "grid_size"):
        if not hasattr(verifier, attr):
            raise TypeError(f"{type(verifier).__name__} lacks '{attr}' of the ViTVerifier contract")
    problems = _describe_missing(backbone)
    if problems:
        raise TypeError("unsupported ViT backbone: " + "; ".join(problems))
    return backbone


def num_prefix_tokens(backbone: nn.Module) -> int:
    """CLS plus register tokens (the tokens in front of the patch tokens)."""
    reg = getattr(backbone, "reg_token", None)
    return 1 + (0 if reg is None else int(reg.shape[1]))


@contextlib.contextmanager
def patch_embed_in_eval(backbone: nn.Module) -> Iterator[None]:
    """Run the token embedding in eval mode for the duration, restoring every flag after.

    Only the token embedding is called as a whole module (a convolutional stem may hold
    BatchNorm, whose training mode would use batch statistics and update running ones). Nothing
    is touched when it is already in eval mode, the usual case.
    """
    modules = [m for m in backbone.patch_embed.modules() if m.training]
    for m in modules:
        m.training = False
    try:
        yield
    finally:
        for m in modules:
            m.training = True


def embed_tokens(
    backbone: nn.Module, pixels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Token embedding: ``(patches (N, L, C), prefix (N, P, C), pos (1, T, C) or None)``.

    The block-0 input is ``norm_pre(cat(prefix, patches) + pos)`` (timm's ``_pos_embed``;
    with ``no_embed_class`` the prefix rows of ``pos`` are zero).
    """
    patches = backbone.patch_embed(pixels)
    if patches.ndim == 4:  # NHWC output (flatten=False)
        patches = patches.flatten(1, 2)
    n = patches.shape[0]
    prefix = [backbone.cls_token.expand(n, -1, -1)]
    reg = getattr(backbone, "reg_token", None)
    if reg is not None:
        prefix.append(reg.expand(n, -1, -1))
    prefix_t = torch.cat(prefix, dim=1)
    pos = getattr(backbone, "pos_embed", None)
    if pos is not None and getattr(backbone, "no_embed_class", False):
        pos = torch.cat([pos.new_zeros(1, prefix_t.shape[1], pos.shape[-1]), pos], dim=1)
    if pos is not None and pos.shape[1] != prefix_t.shape[1] + patches.shape[1]:
        raise ValueError(
            f"position embedding has {pos.shape[1]} rows for "
            f"{prefix_t.shape[1] + patches.shape[1]} tokens"
        )
    return patches, prefix_t, pos


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def block_forward(block: Block, x: torch.Tensor, keep: bool = False) -> tuple[
    torch.Tensor, torch.Tensor, BlockActivations | None
]:
    """One timm pre-norm block, explicitly: ``(output, attention probabilities, activations)``.

    Mirrors ``Block.forward`` and ``Attention.forward`` (softmax(scale * q k^T) written out
    instead of the fused kernel), without dropout or drop-path.
    """
    attn = block.attn
    n, t, _ = x.shape
    heads, head_dim = attn.num_heads, attn.head_dim
    h1 = block.norm1(x)
    qkv = attn.qkv(h1).reshape(n, t, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    probs = ((q * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
    context = attn.norm((probs @ v).transpose(1, 2).reshape(n, t, heads * head_dim))
    ls1 = getattr(block, "ls1", _identity)
    ls2 = getattr(block, "ls2", _identity)
    a = ls1(attn.proj(context))
    y = x + a
    h2 = block.norm2(y)
    mlp = block.mlp
    g = getattr(mlp, "norm", _identity)(mlp.act(mlp.fc1(h2)))
    m = ls2(mlp.fc2(g))
    z = y + m
    acts = BlockActivations(x, h1, q, k, v, probs, context, a, y, h2, g, m, z) if keep else None
    return z, probs, acts


def run_vit(
    verifier: object,
    images: torch.Tensor,
    *,
    requires_grad: bool = False,
    keep_attention: Callable[[torch.Tensor], torch.Tensor] | None = None,
    keep_activations: bool = False,
) -> Trace:
    """Instrumented forward of ``verifier``'s backbone on 0..255 ``images`` (on its device).

    ``keep_attention`` maps each block's probabilities ``(N, H, T, T)`` to what is stored (e.g.
    the head mean); by default they are stored whole. With ``requires_grad`` the block-0 input
    becomes a fresh leaf that requires grad, so the stored probabilities are part of a graph
    (whatever the parameters' flags) and ``torch.autograd.grad`` can differentiate a score
    with respect to them; nothing is accumulated into any ``.grad``. Without it, no graph is
    built at all. With ``keep_activations`` every block's :class:`BlockActivations` are kept
    for relevance propagation (memory for one forward pass less). Call inside
    :func:`patch_embed_in_eval`.
    """
    backbone = check_vit_verifier(verifier)
    with torch.no_grad():
        pixels = verifier.preprocess(images)  # type: ignore[attr-defined]
        patches, prefix, pos = embed_tokens(backbone, pixels)
        x = torch.cat([prefix, patches], dim=1)
        if pos is not None:
            x = x + pos
        norm_pre = getattr(backbone, "norm_pre", None)
        if norm_pre is not None:
            x = norm_pre(x)
    keep = keep_attention or _identity
    block_inputs: list[torch.Tensor] = []
    attentions: list[torch.Tensor] = []
    activations: list[BlockActivations] | None = [] if keep_activations else None
    grad_ctx = torch.enable_grad() if requires_grad else torch.no_grad()
    with grad_ctx:
        if requires_grad:
            x = x.detach().requires_grad_(True)
        for block in backbone.blocks:
            block_inputs.append(x)
            x, probs, acts = block_forward(block, x, keep=keep_activations)
            attentions.append(keep(probs))
            if activations is not None and acts is not None:
                activations.append(acts)
        features = backbone.norm(x)[:, 0]
        fc_norm = getattr(backbone, "fc_norm", None)  # timm's norm after pooling, if any
        if fc_norm is not None:
            features = fc_norm(features)
    grid = tuple(int(g) for g in verifier.grid_size)  # type: ignore[attr-defined]
    if patches.shape[1] != grid[0] * grid[1]:
        raise ValueError(
            f"the token embedding gave {patches.shape[1]} tokens for a {grid[0]}x{grid[1]} grid"
        )
    return Trace(
        pixels=pixels,
        patches=patches,
        prefix=prefix,
        pos=pos,
        block_inputs=block_inputs,
        attentions=attentions,
        output=x,
        features=features,
        num_prefix=prefix.shape[1],
        grid=(grid[0], grid[1]),
        activations=activations,
    )


def vit_features(verifier: object, images: torch.Tensor) -> torch.Tensor:
    """The CLS features ``(N, C)`` of 0..255 ``images``, differentiable with respect to them.

    The forward of :func:`run_vit` (the same layers, inference semantics), with autograd from
    the pixels on: what gradient explainers (xSSAB) need when the verifier's own ``embed``
    runs without autograd. Call inside :func:`patch_embed_in_eval`, with grad enabled.
    """
    backbone = check_vit_verifier(verifier)
    pixels = verifier.preprocess(images)  # type: ignore[attr-defined]
    patches, prefix, pos = embed_tokens(backbone, pixels)
    x = torch.cat([prefix, patches], dim=1)
    if pos is not None:
        x = x + pos
    norm_pre = getattr(backbone, "norm_pre", None)
    if norm_pre is not None:
        x = norm_pre(x)
    for block in backbone.blocks:
        x, _, _ = block_forward(block, x)
    features = backbone.norm(x)[:, 0]
    fc_norm = getattr(backbone, "fc_norm", None)
    if fc_norm is not None:
        features = fc_norm(features)
    return features


def move_to_model(verifier: object, images: torch.Tensor) -> torch.Tensor:
    """``images`` on the backbone's device and floating dtype."""
    backbone = verifier.backbone  # type: ignore[attr-defined]
    param = next(backbone.parameters(), None)
    if param is None:
        return images
    return images.to(device=param.device, dtype=param.dtype)

