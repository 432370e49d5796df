"""The ``face-vit`` verifier: the Face Transformer (Zhong & Deng 2021) on timm's building blocks.

Architecture (docs/method.md, "The face ViT"): 112x112 RGB crops with raw 0..255 values, 14x14
patch tokens (P8S8, P12S8 or a small convolutional stem) plus a CLS token, pre-norm blocks with
GELU MLPs and a qkv projection without bias, attention scale ``dim ** -0.5`` (the public
checkpoints) or ``head_dim ** -0.5`` (timm), embedding = the CLS token through the final
LayerNorm, optional CosFace head. Distance: squared L2 of the L2-normalised embeddings, with an
optional flip-augmented embedding (image + horizontal flip).

The backbone IS a ``timm.models.vision_transformer.VisionTransformer``, so every attention
generator and LRP rule written for timm ViTs applies to it unchanged.
"""

from __future__ import annotations

import json
import numbers
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import Attention
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from xfr.errors import ModelError, OptionError
from xfr.interfaces.images import check_faces
from xfr_plugins.verifiers.patch_embeddings import PATCH_EMBEDDINGS

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class ScaledAttention(Attention):
    """timm ``Attention`` whose fused path honours a custom ``scale`` (e.g. ``dim ** -0.5``)."""

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False
    ) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        x = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.attn_drop.p if self.training else 0.0,
            scale=self.scale,
        )
        x = x.transpose(1, 2).reshape(b, n, self.attn_dim)
        x = self.norm(x)
        x = self.proj(x)
        return self.proj_drop(x)


@dataclass
class FaceViTConfig:
    """Everything needed to rebuild a face ViT (stored as ``config.json``)."""

    patch: str = "p8s8"  # p8s8 | p12s8 | conv
    dim: int = 512
    depth: int = 20
    heads: int = 8
    mlp_dim: int = 2048
    image_size: int = 112
    dropout: float = 0.1
    #: ``"dim"`` (``dim ** -0.5``, the public Face Transformer checkpoints) or ``"head_dim"``.
    attention_scale: str = "dim"
    #: ``"raw"`` (0..255 into the model, as the Face Transformer) or ``"centered"`` ((x-127.5)/128).
    input_norm: str = "raw"
    #: Number of identities of the CosFace head (0: no head).
    num_classes: int = 0
    cosface_s: float = 64.0
    cosface_m: float = 0.35
    #: What ``class_logits`` returns (the ``logit`` target of the attention maps):
    #: ``"cosine"`` (``s cos(f, c)``, the CosFace head as trained) or ``"linear"`` (``W f``: the
    #: class centres read as a plain linear head, as the paper's authors' explanation code
    #: reads its identity head; docs/method.md, "Targets").
    head_logit: str = "cosine"
    #: Decision threshold on the squared L2 distance of normalised embeddings (0..4).
    threshold: float = 1.0
    #: Embed image + horizontal flip (the Face Transformer's evaluation; docs/method.md,
    #: "Verification accuracy"); the paper's threshold is without flip.
    flip: bool = False
    #: Free-form provenance: training data, folds, teacher, accuracy, date, licences.
    provenance: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        check_threshold(self.threshold)
        if self.patch not in PATCH_EMBEDDINGS:
            known = sorted(PATCH_EMBEDDINGS)
            raise ValueError(f"unknown patch embedding {self.patch!r}; known: {known}")
        if self.attention_scale not in ("dim", "head_dim"):
            raise ValueError("attention_scale must be 'dim' or 'head_dim'")
        if self.input_norm not in ("raw", "centered"):
            raise ValueError("input_norm must be 'raw' or 'centered'")
        if self.head_logit not in ("cosine", "linear"):
            raise ValueError(f"head_logit must be 'cosine' or 'linear', got {self.head_logit!r}")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")
        if self.image_size % 8:
            raise ValueError("image_size must be a multiple of 8")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FaceViTConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown face-vit config keys: {sorted(unknown)}")
        cfg = cls(**d)
        for name, f in cls.__dataclass_fields__.items():
            if name == "threshold":
                continue  # validate() says what a threshold must be
            want = {"int": numbers.Integral, "float": numbers.Real, "str": str,
                    "bool": bool}.get(str(f.type))
            value = getattr(cfg, name)
            if want is not None and (not isinstance(value, want)
                                     or (want is not bool and isinstance(value, bool))):
                raise ValueError(f"{name} must be {str(f.type)}, got {value!r}")
        return cfg


#: Images per forward call of ``embed`` on the CPU: chosen by measurement on 2 CPU cores (the
#: default model: 5.8 CPU-ms per face at 32, 6.8 at 64, 11.4 at 256, where the activations no
#: longer stay in cache); the embeddings are the same for every chunk size measured (1 to 256).
EMBED_BATCH = 32
#: Images per forward call of ``embed`` on other devices (a GPU wants large batches).
EMBED_BATCH_DEVICE = 256

#: The squared L2 distance of two L2-normalised embeddings lies in [0, 4].
DISTANCE_RANGE = (0.0, 4.0)


def check_threshold(value: Any, where: str = "threshold") -> float:
    """``value`` as a float if it is a usable decision threshold on the squared L2 distance of
    normalised embeddings (strictly between 0 and 4, paper Sec. 3.1: decision = distance <
    threshold), else :class:`~xfr.errors.OptionError` (a ``ValueError``): NaN, a negative or a
    too large threshold would give every pair the same decision."""
    lo, hi = DISTANCE_RANGE
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise OptionError(f"{where} must be a number, got {value!r}")
    v = float(value)
    if not (lo < v < hi):
        raise OptionError(
            f"{where} must be a number between {lo:g} and {hi:g} (exclusive; the squared L2 "
            f"distance of normalised embeddings lies in [{lo:g}, {hi:g}]), got {value!r}: "
            "every pair would get the same decision")
    return v


def build_backbone(cfg: FaceViTConfig) -> VisionTransformer:
    """A timm ``VisionTransformer`` with the face ViT's shape and token embedding."""
    cfg.validate()
    vit = VisionTransformer(
        img_size=cfg.image_size,
        patch_size=8,
        in_chans=3,
        num_classes=0,
        global_pool="token",
        embed_dim=cfg.dim,
        depth=cfg.depth,
        num_heads=cfg.heads,
        mlp_ratio=cfg.mlp_dim / cfg.dim,
        qkv_bias=False,
        class_token=True,
        embed_layer=PATCH_EMBEDDINGS[cfg.patch],
        norm_layer=partial(nn.LayerNorm, eps=1e-5),
        act_layer=nn.GELU,
        drop_rate=0.0,
        pos_drop_rate=cfg.dropout,
        proj_drop_rate=cfg.dropout,
        attn_drop_rate=0.0,
        attn_layer=ScaledAttention,
    )
    scale = cfg.dim**-0.5 if cfg.attention_scale == "dim" else (cfg.dim // cfg.heads) ** -0.5
    for block in vit.blocks:
        block.attn.scale = scale
    return vit


class CosFaceHead(nn.Module):
    """CosFace (Wang et al. 2018): ``s * (cos(theta) - m)`` on the target class."""

    def __init__(self, dim: int, num_classes: int, s: float, m: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, dim))
        nn.init.normal_(self.weight, std=0.01)
        self.s, self.m = s, m

    def cosine(self, features: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(features, dim=-1), F.normalize(self.weight, dim=-1))

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        cos = self.cosine(features)
        if labels is not None:
            cos = cos - self.m * F.one_hot(labels, cos.shape[1]).to(cos.dtype)
        return self.s * cos


class FaceViTModel(nn.Module):
    """Backbone + optional CosFace head: the trainable part of the verifier."""

    def __init__(self, cfg: FaceViTConfig) -> None:
        super().__init__()
        self.backbone = build_backbone(cfg)
        self.head = (
            CosFaceHead(cfg.dim, cfg.num_classes, cfg.cosface_s, cfg.cosface_m)
            if cfg.num_classes
            else None
        )
        self.input_norm = cfg.input_norm

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return (images - 127.5) / 128.0 if self.input_norm == "centered" else images

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Unnormalised embeddings (the CLS token after the final LayerNorm) of 0..255 images."""
        return self.backbone.forward_features(self.preprocess(images))[:, 0]


def normalised_embeddings(forward: Any, images: torch.Tensor, flip: bool,
                          batch_size: int | None, device: torch.device) -> torch.Tensor:
    """L2-normalised ``forward`` outputs in chunks of ``batch_size`` images (``None``:
    :data:`EMBED_BATCH` on the CPU, :data:`EMBED_BATCH_DEVICE` elsewhere); with ``flip``, the
    normalised sum of the image's and its mirror image's normalised embeddings (the Face
    Transformer's evaluation; docs/method.md, "Verification accuracy")."""
    if batch_size is None:
        on_cpu = torch.device(device).type == "cpu"
        batch_size = EMBED_BATCH if on_cpu else EMBED_BATCH_DEVICE
    out = []
    with torch.inference_mode():
        for chunk in images.split(batch_size):
            chunk = chunk.to(device)
            e = F.normalize(forward(chunk), dim=-1)
            if flip:
                e = e + F.normalize(forward(chunk.flip(-1)), dim=-1)
            out.append(F.normalize(e, dim=-1))
    return torch.cat(out)


def squared_l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise squared L2 distance of L2-normalised embeddings (0..4)."""
    return (F.normalize(a, dim=-1) - F.normalize(b, dim=-1)).pow(2).sum(-1)


class FaceViTVerifier:
    """A face ViT as an :class:`xfr.interfaces.ViTVerifier`."""

    name = "face-vit"

    def __init__(self, config: FaceViTConfig | None = None, model: FaceViTModel | None = None,
                 device: str | torch.device = "cpu") -> None:
        self.config = config or FaceViTConfig()
        self.model = model if model is not None else FaceViTModel(self.config)
        self.model.eval().to(device)
        self.threshold = float(self.config.threshold)
        self.input_size = self.config.image_size
        self.flip = bool(self.config.flip)

    # -- ViTVerifier -----------------------------------------------------------------------
    @property
    def backbone(self) -> VisionTransformer:
        return self.model.backbone

    @property
    def grid_size(self) -> tuple[int, int]:
        return tuple(self.model.backbone.patch_embed.grid_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.preprocess(images)

    def class_logits(self, features: torch.Tensor) -> torch.Tensor | None:
        head = self.model.head
        if head is None:
            return None
        if self.config.head_logit == "linear":
            return F.linear(features, head.weight)
        return head.s * head.cosine(features)

    def embed(self, images: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """L2-normalised embeddings ``(N, D)``; image + flip when ``flip`` is set."""
        images = check_faces(images, self.input_size)
        return normalised_embeddings(self.model, images, self.flip, batch_size, self.device)

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return squared_l2(a, b)

    # -- xfr's own format ------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``model.safetensors`` + ``config.json`` (architecture, threshold, provenance)."""
        from safetensors.torch import save_file

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, str(out / WEIGHTS_FILE))
        cfg = asdict(self.config)
        cfg["threshold"] = self.threshold
        doc = {"verifier": self.name, "format": 1, "architecture": cfg}
        (out / CONFIG_FILE).write_text(json.dumps(doc, indent=2))
        return out

    @classmethod
    def load(cls, source: str | Path | None = None, *, device: str = "cpu",
             **options: Any) -> FaceViTVerifier:
        """Build from xfr's format (a folder with ``config.json`` + ``model.safetensors``).

        Without ``source``: a randomly initialised model with architecture ``options``
        (e.g. ``dim=192, depth=6, heads=3``), for training or tests.
        """
        if source is None:
            return cls(FaceViTConfig.from_dict(options), device=device)
        folder = Path(source)
        cfg_path = folder / CONFIG_FILE
        if not cfg_path.is_file():
            raise FileNotFoundError(f"not an xfr model folder (no {CONFIG_FILE}): {folder}")
        from xfr.api import read_model_config

        doc = read_model_config(folder)
        arch = doc.get("architecture", {})
        if not isinstance(arch, dict):
            raise ModelError(f"{cfg_path}: 'architecture' must be an object, got {arch!r}")
        arch = {**arch, **options}
        try:
            cfg = FaceViTConfig.from_dict(arch)
            cfg.validate()
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{cfg_path}: {exc}") from None
        model = FaceViTModel(cfg)
        weights = folder / WEIGHTS_FILE
        state = read_safetensors(weights)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        problems = state_dict_mismatch(expected, {k: tuple(v.shape) for k, v in state.items()})
        if problems:
            raise ModelError(f"{weights} does not fit {cfg_path}: {problems}")
        model.load_state_dict(state)
        return cls(cfg, model, device=device)

    def num_parameters(self, include_head: bool = False) -> int:
        params = self.model.backbone.parameters() if not include_head else self.model.parameters()
        return sum(p.numel() for p in params)


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file; :class:`~xfr.errors.ModelError` naming the file
    when it is missing, damaged or not a safetensors file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise ModelError(f"model weights missing: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: damaged or not a safetensors file ({reason})") from None


def state_dict_mismatch(expected: dict[str, tuple[int, ...]],
                        found: dict[str, tuple[int, ...]], limit: int = 3) -> str:
    """What keeps ``found`` (name -> shape) from loading into ``expected``, in one line (at
    most ``limit`` names per kind of problem), or ``""``."""
    def some(names: list[str]) -> str:
        more = f" and {len(names) - limit} more" if len(names) > limit else ""
        return ", ".join(names[:limit]) + more

    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = [f"{k} {found[k]} (the architecture needs {expected[k]})"
              for k in sorted(set(expected) & set(found)) if expected[k] != found[k]]
    parts = []
    if shapes:
        parts.append(f"{len(shapes)} tensor(s) of another shape: {some(shapes)}")
    if missing:
        parts.append(f"{len(missing)} tensor(s) missing: {some(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected tensor(s): {some(unexpected)}")
    return "; ".join(parts)


def count_tokens(cfg: FaceViTConfig) -> int:
    """Tokens the transformer sees: the patch grid plus CLS (197 at 112x112)."""
    return (cfg.image_size // 8) ** 2 + 1


__all__ = [
    "CosFaceHead",
    "FaceViTConfig",
    "FaceViTModel",
    "FaceViTVerifier",
    "ScaledAttention",
    "build_backbone",
    "check_threshold",
    "count_tokens",
    "normalised_embeddings",
    "read_safetensors",
    "squared_l2",
    "state_dict_mismatch",
]
