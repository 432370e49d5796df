"""Loader (a): the public Face Transformer checkpoints (Zhong & Deng 2021) as ``face-vit``
verifiers (issue 4; docs/method.md, "The face ViT").

The checkpoints hold the parameters of the authors' ``ViT_face`` (P8S8) / ``ViTs_face``
(P12S8) modules; they map one-to-one onto :class:`~xfr_plugins.verifiers.face_vit.FaceViTModel`:

====================================================  ==========================================
Face Transformer name                                 face-vit name
====================================================  ==========================================
``cls_token``                                         ``backbone.cls_token``
``pos_embedding``                                     ``backbone.pos_embed``
``patch_to_embedding.{weight,bias}``                  ``backbone.patch_embed.proj.*``
``transformer.layers.{i}.0.fn.norm.*``                ``backbone.blocks.{i}.norm1.*``
``transformer.layers.{i}.0.fn.fn.to_qkv.weight``      ``backbone.blocks.{i}.attn.qkv.weight``
``transformer.layers.{i}.0.fn.fn.to_out.0.*``         ``backbone.blocks.{i}.attn.proj.*``
``transformer.layers.{i}.1.fn.norm.*``                ``backbone.blocks.{i}.norm2.*``
``transformer.layers.{i}.1.fn.fn.net.0.*``            ``backbone.blocks.{i}.mlp.fc1.*``
``transformer.layers.{i}.1.fn.fn.net.3.*``            ``backbone.blocks.{i}.mlp.fc2.*``
``mlp_head.0.*`` (the final LayerNorm)                ``backbone.norm.*``
``loss.weight`` (CosFace class centres)               ``head.weight``
====================================================  ==========================================

The architecture is read from the tensors' shapes: ``dim`` (``cls_token``), depth (layer
indices), MLP width (``net.0``), token embedding (``patch_to_embedding`` input 192 = P8S8, 432
= P12S8), image size (``pos_embedding`` rows), identities (``loss.weight`` rows). The head count
is not in the shapes: it is ``inner_dim / dim_head`` with the authors' default ``dim_head = 64``
(8 heads at dim 512) unless ``heads`` is given. The attention scale is ``dim ** -0.5`` and the
input raw 0..255 RGB, as in their code. The qkv layout (``chunk(3)`` then ``(h d)``) is timm's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from xfr_plugins.verifiers.face_vit import FaceViTConfig, FaceViTModel, FaceViTVerifier
from xfr_plugins.verifiers.timm_vit import load_state_dict_file

__all__ = ["convert_state_dict", "infer_config", "load_face_transformer"]

_PATCH_BY_FEATURES = {8 * 8 * 3: "p8s8", 12 * 12 * 3: "p12s8"}

_LAYER = re.compile(r"^transformer\.layers\.(\d+)\.([01])\.fn\.(.+)$")
_ATTN = {
    "norm.weight": "norm1.weight",
    "norm.bias": "norm1.bias",
    "fn.to_qkv.weight": "attn.qkv.weight",
    "fn.to_out.0.weight": "attn.proj.weight",
    "fn.to_out.0.bias": "attn.proj.bias",
}
_MLP = {
    "norm.weight": "norm2.weight",
    "norm.bias": "norm2.bias",
    "fn.net.0.weight": "mlp.fc1.weight",
    "fn.net.0.bias": "mlp.fc1.bias",
    "fn.net.3.weight": "mlp.fc2.weight",
    "fn.net.3.bias": "mlp.fc2.bias",
}
_TOP = {
    "cls_token": "backbone.cls_token",
    "pos_embedding": "backbone.pos_embed",
    "patch_to_embedding.weight": "backbone.patch_embed.proj.weight",
    "patch_to_embedding.bias": "backbone.patch_embed.proj.bias",
    "mlp_head.0.weight": "backbone.norm.weight",
    "mlp_head.0.bias": "backbone.norm.bias",
    "loss.weight": "head.weight",
}


def _strip(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}


def _need(state: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in state:
        raise ValueError(f"not a Face Transformer checkpoint: no '{key}'")
    return state[key]


def infer_config(
    state: Mapping[str, torch.Tensor], *, heads: int | None = None, dim_head: int = 64,
    with_head: bool = True, **options: Any,
) -> FaceViTConfig:
    """The :class:`FaceViTConfig` of a Face Transformer state dict (see module docstring)."""
    state = _strip(state)
    dim = int(_need(state, "cls_token").shape[-1])
    tokens = int(_need(state, "pos_embedding").shape[1])
    side = round((tokens - 1) ** 0.5)
    if side * side != tokens - 1:
        raise ValueError(f"pos_embedding has {tokens} rows, not a square grid + CLS")
    in_features = int(_need(state, "patch_to_embedding.weight").shape[1])
    if in_features not in _PATCH_BY_FEATURES:
        raise ValueError(
            f"patch_to_embedding takes {in_features} features; known: 192 (P8S8), 432 (P12S8)"
        )
    layers = sorted({int(m.group(1)) for k in state if (m := _LAYER.match(k))})
    if not layers or layers != list(range(len(layers))):
        raise ValueError(f"transformer layers are missing or not contiguous: {layers}")
    inner = int(_need(state, "transformer.layers.0.0.fn.fn.to_qkv.weight").shape[0]) // 3
    if inner != dim:
        raise ValueError(
            f"inner attention width {inner} differs from dim {dim}; face-vit needs them equal"
        )
    if heads is None:
        if inner % dim_head:
            raise ValueError(f"inner width {inner} is not a multiple of dim_head {dim_head}")
        heads = inner // dim_head
    mlp_dim = int(_need(state, "transformer.layers.0.1.fn.fn.net.0.weight").shape[0])
    num_classes = int(state["loss.weight"].shape[0]) if with_head and "loss.weight" in state else 0
    provenance = dict(options.pop("provenance", {}) or {})
    provenance.setdefault("format", "Face Transformer checkpoint (Zhong & Deng 2021)")
    return FaceViTConfig(
        patch=_PATCH_BY_FEATURES[in_features],
        dim=dim,
        depth=len(layers),
        heads=heads,
        mlp_dim=mlp_dim,
        image_size=side * 8,
        attention_scale="dim",
        input_norm="raw",
        num_classes=num_classes,
        provenance=provenance,
        **options,
    )


def convert_state_dict(
    state: Mapping[str, torch.Tensor], *, with_head: bool = True
) -> dict[str, torch.Tensor]:
    """Rename a Face Transformer state dict to :class:`FaceViTModel`'s names.

    Unknown names raise ``ValueError`` (a wrong file should not load half-way); ``loss.weight``
    is dropped when ``with_head`` is false.
    """
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in _strip(state).items():
        if key == "loss.weight" and not with_head:
            continue
        if key in _TOP:
            out[_TOP[key]] = value
            continue
        m = _LAYER.match(key)
        table = (_ATTN if m.group(2) == "0" else _MLP) if m else {}
        if m and m.group(3) in table:
            out[f"backbone.blocks.{m.group(1)}.{table[m.group(3)]}"] = value
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"unknown Face Transformer parameters: {sorted(unknown)[:10]}")
    return out


def load_face_transformer(
    source: str | Path | Mapping[str, torch.Tensor],
    *,
    heads: int | None = None,
    dim_head: int = 64,
    with_head: bool = True,
    device: str = "cpu",
    **options: Any,
) -> FaceViTVerifier:
    """A ``face-vit`` verifier from a Face Transformer checkpoint file or state dict.

    ``options`` are further :class:`FaceViTConfig` fields (``threshold``, ``flip``,
    ``cosface_s``, ``cosface_m``, ``provenance``...). Loading is strict: every parameter of the
    model must come from the checkpoint.
    """
    if isinstance(source, Mapping):
        state = dict(source)
    else:
        state = load_state_dict_file(source)
        options.setdefault("provenance", {"source": str(source)})
    cfg = infer_config(state, heads=heads, dim_head=dim_head, with_head=with_head, **options)
    model = FaceViTModel(cfg)
    converted = convert_state_dict(state, with_head=with_head and cfg.num_classes > 0)
    try:
        missing, unexpected = model.load_state_dict(converted, strict=False)
    except RuntimeError as exc:  # shape mismatches between the checkpoint's own tensors
        raise ValueError(f"checkpoint does not fit its inferred architecture: {exc}") from None
    if missing or unexpected:
        raise ValueError(
            f"checkpoint does not fit: missing {sorted(missing)[:10]}, "
            f"unexpected {sorted(unexpected)[:10]}"
        )
    return FaceViTVerifier(cfg, model, device=device)
