"""Relevance from block 0's input tokens down to the pixels (Chefer et al.; docs/method.md,
"LRP rules").

Block 0's input is ``norm_pre(cat(prefix, patches) + pos)``: the position embedding takes its
share of relevance by the residual rule, the CLS (and register) tokens theirs, and the patch
tokens' relevance goes through the token embedding to the pixels:

- Face Transformer P8S8 / P12S8 (a Linear on flattened / unfolded patches) and timm's
  ``PatchEmbed`` (a convolution): the z^B rule with each image's lowest and highest value as
  bounds (padding gets none);
- the convolutional stem: alpha-beta through the 1x1 projection and the inner convolutions,
  BatchNorm and ReLU passed through, z^B on the first convolution.

The attention maps themselves need relevance only down to the tokens; this is what checks that
relevance is conserved all the way to the input (``test_lrp.py``, its only user, hence its place
among the tests' helpers).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed
from torch import nn
from xfr_plugins.attention.lrp import add_relevance, linear_alpha_beta, linear_zb
from xfr_plugins.attention.tracing import Trace
from xfr_plugins.verifiers.patch_embeddings import P8S8, P12S8, ConvStem

__all__ = ["InputRelevance", "conv_relevance", "input_relevance"]


@dataclass
class InputRelevance:
    pixels: torch.Tensor  #: (N, 3, H, W) relevance of the backbone's input
    patches: torch.Tensor  #: (N, L, C) relevance of the token embedding's output
    prefix: torch.Tensor  #: (N,) relevance of the CLS (+ register) tokens
    position: torch.Tensor  #: (N,) relevance of the position embedding

    def total(self) -> torch.Tensor:
        return self.pixels.flatten(1).sum(-1) + self.prefix + self.position


def _bounds(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = pixels.flatten(1)
    shape = (-1,) + (1,) * (pixels.ndim - 1)
    return flat.min(-1).values.reshape(shape), flat.max(-1).values.reshape(shape)


def conv_relevance(
    x: torch.Tensor,
    conv: nn.Conv2d,
    relevance: torch.Tensor,
    *,
    alpha: float = 1.0,
    bounds: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Relevance of a ``Conv2d``'s input: alpha-beta, or z^B when ``bounds`` are given.

    The convolution is written as a Linear over unfolded patches; relevance is folded back
    (overlapping patches add up).
    """
    if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise TypeError("conv_relevance supports groups=1, zero padding given as numbers")
    geometry = dict(
        kernel_size=conv.kernel_size, dilation=conv.dilation, padding=conv.padding,
        stride=conv.stride,
    )
    cols = F.unfold(x, **geometry).transpose(1, 2)  # (N, L, Cin*k*k)
    weight = conv.weight.reshape(conv.out_channels, -1)
    r = relevance.flatten(2).transpose(1, 2)  # (N, L, Cout)
    if bounds is None:
        rc = linear_alpha_beta(cols, weight, r, alpha)
    else:
        inside = F.unfold(torch.ones_like(x[:1]), **geometry).transpose(1, 2)
        low, high = bounds
        rc = linear_zb(cols, weight, r, low.reshape(-1, 1, 1) * inside,
                       high.reshape(-1, 1, 1) * inside)
    return F.fold(rc.transpose(1, 2), output_size=tuple(x.shape[-2:]), **geometry)


def _p8s8(embed: P8S8, pixels: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    n, c, h, w = pixels.shape
    gh, gw = embed.grid_size
    patches = pixels.reshape(n, c, gh, 8, gw, 8).permute(0, 2, 4, 3, 5, 1).reshape(n, gh * gw, -1)
    low, high = _bounds(pixels)
    rp = linear_zb(patches, embed.proj.weight, r, low.reshape(-1, 1, 1), high.reshape(-1, 1, 1))
    return rp.reshape(n, gh, gw, 8, 8, c).permute(0, 5, 1, 3, 2, 4).reshape(n, c, h, w)


def _p12s8(embed: P12S8, pixels: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    geometry = dict(kernel_size=12, stride=8, padding=4)
    patches = F.unfold(pixels, **geometry).transpose(1, 2)
    inside = F.unfold(torch.ones_like(pixels[:1]), **geometry).transpose(1, 2)
    low, high = _bounds(pixels)
    rp = linear_zb(patches, embed.proj.weight, r, low.reshape(-1, 1, 1) * inside,
                   high.reshape(-1, 1, 1) * inside)
    return F.fold(rp.transpose(1, 2), output_size=tuple(pixels.shape[-2:]), **geometry)


def _grid(r: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    n, _, c = r.shape
    return r.transpose(1, 2).reshape(n, c, grid[0], grid[1])


def _conv_stem(embed: ConvStem, pixels: torch.Tensor, r: torch.Tensor,
               alpha: float) -> torch.Tensor:
    convs: list[nn.Conv2d] = []
    inputs: list[torch.Tensor] = []
    a = pixels
    for layer in embed.stem:
        if isinstance(layer, nn.Conv2d):
            convs.append(layer)
            inputs.append(a)
        a = layer(a)
    rel = conv_relevance(a, embed.proj, _grid(r, embed.grid_size), alpha=alpha)
    for i in range(len(convs) - 1, -1, -1):  # BatchNorm and ReLU pass relevance through
        bounds = _bounds(pixels) if i == 0 else None
        rel = conv_relevance(inputs[i], convs[i], rel, alpha=alpha, bounds=bounds)
    return rel


def _timm_patch_embed(embed: PatchEmbed, pixels: torch.Tensor, r: torch.Tensor,
                      grid: tuple[int, int]) -> torch.Tensor:
    if getattr(embed, "dynamic_img_pad", False):
        raise TypeError("pixel relevance of a PatchEmbed with dynamic_img_pad is not supported")
    return conv_relevance(pixels, embed.proj, _grid(r, grid), bounds=_bounds(pixels))


def pixel_relevance(
    embed: nn.Module, pixels: torch.Tensor, r_patches: torch.Tensor, grid: tuple[int, int],
    alpha: float = 1.0,
) -> torch.Tensor:
    """Relevance ``(N, 3, H, W)`` of the token embedding's input from its output's."""
    if isinstance(embed, P8S8):
        return _p8s8(embed, pixels, r_patches)
    if isinstance(embed, P12S8):
        return _p12s8(embed, pixels, r_patches)
    if isinstance(embed, ConvStem):
        return _conv_stem(embed, pixels, r_patches, alpha)
    if isinstance(embed, PatchEmbed):
        return _timm_patch_embed(embed, pixels, r_patches, grid)
    raise TypeError(f"no relevance rule for the token embedding {type(embed).__name__}")


def input_relevance(
    backbone: nn.Module, trace: Trace, tokens: torch.Tensor, alpha: float = 1.0
) -> InputRelevance:
    """Split block 0's input relevance ``(N, T, C)`` into pixels, prefix tokens and positions."""
    with torch.no_grad():
        seq = torch.cat([trace.prefix, trace.patches], dim=1).detach()
        if trace.pos is None:
            r_seq, r_pos = tokens, torch.zeros_like(tokens)
        else:
            r_seq, r_pos = add_relevance(seq, trace.pos.detach(), tokens)
        p = trace.num_prefix
        r_patches = r_seq[:, p:]
        pixels = pixel_relevance(backbone.patch_embed, trace.pixels.detach(), r_patches,
                                 trace.grid, alpha)
    return InputRelevance(
        pixels=pixels,
        patches=r_patches,
        prefix=r_seq[:, :p].flatten(1).sum(-1),
        position=r_pos.flatten(1).sum(-1),
    )
