"""Token embeddings of the face ViT: 112x112 images -> 14x14 = 196 patch tokens.

- ``P8S8``: non-overlapping 8x8 patches flattened in (row, col, channel) order, then
  ``Linear(192 -> dim)`` (Face Transformer ViT-P8S8; docs/method.md, "The face ViT").
- ``P12S8``: 12x12 patches with stride 8 and padding 4, unfolded in (channel, row, col) order,
  then ``Linear(432 -> dim)`` (Face Transformer ViT-P12S8).
- ``ConvStem``: three 3x3 stride-2 convolutions (112 -> 56 -> 28 -> 14) and a 1x1 projection
  ("Early convolutions help transformers see better", Xiao et al. 2021); it trains far better on
  little data while keeping the 14x14 token grid, so attention maps stay as fine as the paper's.

All take the constructor arguments timm's ``VisionTransformer`` passes to its ``embed_layer``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class _TokenEmbedding(nn.Module):
    """Shared bookkeeping: timm reads ``num_patches``, ``grid_size`` and ``feat_ratio``."""

    def __init__(self, img_size: int, stride: int) -> None:
        super().__init__()
        self.img_size = (img_size, img_size)
        self.grid_size = (img_size // stride, img_size // stride)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.patch_size = (stride, stride)
        self._stride = stride

    def feat_ratio(self, as_scalar: bool = True) -> int:
        return self._stride

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or tuple(x.shape[-2:]) != self.img_size or x.shape[1] != 3:
            raise ValueError(
                f"expected images of shape (N, 3, {self.img_size[0]}, {self.img_size[1]}), "
                f"got {tuple(x.shape)}"
            )


class P8S8(_TokenEmbedding):
    """Face Transformer ViT-P8S8 patch embedding (``patch_to_embedding``)."""

    def __init__(self, img_size: int = 112, embed_dim: int = 512, **_: Any) -> None:
        super().__init__(int(img_size if isinstance(img_size, int) else img_size[0]), 8)
        self.proj = nn.Linear(8 * 8 * 3, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        n, c, h, w = x.shape
        gh, gw = self.grid_size
        # b c (h p1) (w p2) -> b (h w) (p1 p2 c)
        x = x.reshape(n, c, gh, 8, gw, 8).permute(0, 2, 4, 3, 5, 1).reshape(n, gh * gw, 64 * c)
        return self.proj(x)


class P12S8(_TokenEmbedding):
    """Face Transformer ViT-P12S8 overlapping patch embedding (unfold 12, stride 8, pad 4)."""

    def __init__(self, img_size: int = 112, embed_dim: int = 512, **_: Any) -> None:
        super().__init__(int(img_size if isinstance(img_size, int) else img_size[0]), 8)
        self.proj = nn.Linear(12 * 12 * 3, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        patches = nn.functional.unfold(x, kernel_size=12, stride=8, padding=4)  # (N, c*144, L)
        return self.proj(patches.transpose(1, 2))


class ConvStem(_TokenEmbedding):
    """Three stride-2 3x3 convolutions + BatchNorm + ReLU, then a 1x1 projection to ``dim``."""

    def __init__(self, img_size: int = 112, embed_dim: int = 512, **_: Any) -> None:
        super().__init__(int(img_size if isinstance(img_size, int) else img_size[0]), 8)
        widths = [max(16, embed_dim // 4), max(32, embed_dim // 2), embed_dim]
        layers: list[nn.Module] = []
        cin = 3
        for cout in widths:
            layers += [
                nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]
            cin = cout
        self.stem = nn.Sequential(*layers)
        self.proj = nn.Conv2d(cin, embed_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return self.proj(self.stem(x)).flatten(2).transpose(1, 2)


PATCH_EMBEDDINGS: dict[str, type[_TokenEmbedding]] = {
    "p8s8": P8S8,
    "p12s8": P12S8,
    "conv": ConvStem,
}
