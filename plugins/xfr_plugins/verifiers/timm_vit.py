"""The ``timm-vit`` verifier: any timm ``VisionTransformer`` as a ViT face verifier (issue 4,
loader (b); paper Sec. 3.1, "Face Verification Pipeline").

The embedding is what the timm model itself calls its pre-logits features with CLS-token
pooling: the CLS token after the final norm (``forward_head(forward_features(x),
pre_logits=True)``), L2-normalised; distance = squared L2 (0..4) as for every xfr verifier.
Images come in as 0..255 RGB and are mapped to the model's input normalisation
(``(x / 255 - mean) / std``, ``mean``/``std`` from the model's ``pretrained_cfg`` unless given).
The classifier head, when the model has one, serves as the identity head of the ``logit``
attention target.

Sources (all offline; xfr never downloads weights): a ``VisionTransformer`` module; a timm model
name, built with ``pretrained=False`` (keyword options such as ``img_size=112`` go to
``timm.create_model``); or a state-dict file (``.safetensors`` or a torch ``.pth``/``.pt``) with
``model="<timm name>"`` naming the architecture.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from timm.models.vision_transformer import VisionTransformer

from xfr.errors import ModelError
from xfr.interfaces.images import check_faces
from xfr_plugins.verifiers.face_vit import (
    check_threshold,
    normalised_embeddings,
    squared_l2,
)

__all__ = ["TimmViTVerifier", "load_state_dict_file"]


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a torch file (``weights_only``), on the CPU.

    A ``{"state_dict": ...}`` or ``{"model": ...}`` wrapper and DataParallel's ``module.``
    prefix are removed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such weights file: {path}")
    if path.suffix == ".safetensors":
        from xfr_plugins.verifiers.face_vit import read_safetensors

        state: Any = read_safetensors(path)
    else:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # damaged zip, truncated pickle, objects other than tensors
            raise ModelError(
                f"{path}: damaged or not a PyTorch state dict ({_torch_load_reason(exc)}); xfr "
                "reads state dicts saved with torch.save(model.state_dict(), path)") from None
    if isinstance(state, Mapping):
        for key in ("state_dict", "model"):
            inner = state.get(key)
            if isinstance(inner, Mapping) and not isinstance(inner, torch.Tensor):
                state = inner
                break
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ModelError(f"{path} does not hold a state dict of tensors")
    return {
        (k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()
    }


def _torch_load_reason(exc: BaseException) -> str:
    """``torch.load``'s failure in a few words, without its advice to load with
    ``weights_only=False`` (which would run code from the file)."""
    text = str(exc)
    if "Unsupported global" in text or "This file can still be loaded" in text:
        return "it holds Python objects other than tensors, which xfr does not unpickle"
    if "Weights only load failed" in text or isinstance(exc, (EOFError, UnicodeDecodeError)):
        return "not a PyTorch file, or a truncated one"
    if "PytorchStreamReader" in text or isinstance(exc, OSError):
        return "a damaged or truncated PyTorch zip file"
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    return first.split(". ")[0]


def _triple(value: Any, what: str) -> tuple[float, float, float]:
    vals = tuple(float(v) for v in value)
    if len(vals) != 3:
        raise ValueError(f"{what} must have 3 values (RGB), got {value!r}")
    if what == "std" and any(v <= 0 for v in vals):
        raise ValueError(f"std must be positive, got {value!r}")
    return vals


class TimmViTVerifier:
    """A timm ``VisionTransformer`` as an :class:`xfr.interfaces.ViTVerifier`."""

    name = "timm-vit"

    def __init__(
        self,
        model: VisionTransformer,
        *,
        threshold: float = 1.0,
        flip: bool = False,
        mean: Any = None,
        std: Any = None,
        use_head: bool = True,
        device: str | torch.device | None = None,
    ) -> None:
        if not isinstance(model, VisionTransformer):
            raise TypeError(
                f"timm-vit wraps a timm VisionTransformer, got {type(model).__name__}"
            )
        if model.cls_token is None or model.global_pool != "token":
            raise ValueError(
                "timm-vit needs a ViT with a CLS token and global_pool='token' (the embedding "
                f"is the CLS token after the final norm); got global_pool={model.global_pool!r}"
            )
        if getattr(model, "attn_pool", None) is not None:
            raise ValueError("timm-vit does not support attention-pool heads")
        img_size = tuple(int(s) for s in model.patch_embed.img_size)
        if img_size[0] != img_size[1]:
            raise ValueError(f"timm-vit needs square inputs, the model takes {img_size}")
        cfg = dict(getattr(model, "pretrained_cfg", None) or {})
        self.mean = _triple(mean if mean is not None else cfg.get("mean", (0.5,) * 3), "mean")
        self.std = _triple(std if std is not None else cfg.get("std", (0.5,) * 3), "std")
        self.model = model
        if device is not None:
            self.model.to(device)
        self.model.eval()
        self.threshold = check_threshold(threshold)
        self.flip = bool(flip)
        self.use_head = bool(use_head)
        self.input_size = img_size[0]

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        source: Any = None,
        *,
        model: str | VisionTransformer | None = None,
        threshold: float = 1.0,
        flip: bool = False,
        mean: Any = None,
        std: Any = None,
        use_head: bool = True,
        device: str | torch.device | None = None,
        **model_options: Any,
    ) -> TimmViTVerifier:
        """Build from a module, a timm model name or a state-dict file (see module docstring)."""
        import timm

        if model_options.get("pretrained"):
            raise ValueError(
                "xfr never downloads weights: build with pretrained=False and pass a "
                "state-dict file as the source"
            )
        model_options.pop("pretrained", None)
        weights: Path | None = None
        if isinstance(source, VisionTransformer):
            if model is not None or model_options:
                raise ValueError("model options make no sense with a ready module as source")
            module = source
        else:
            if isinstance(source, (str, Path)) and Path(source).is_file():
                weights = Path(source)
            elif isinstance(source, str) and source:
                if model is not None:
                    raise ValueError(f"two architectures given: {source!r} and model={model!r}")
                model = source
            elif source is not None:
                raise TypeError(
                    "timm-vit source must be a VisionTransformer, a timm model name or a "
                    f"weights file, got {type(source).__name__}"
                )
            if isinstance(model, VisionTransformer):
                module = model
            elif isinstance(model, str):
                if not timm.is_model(model):
                    raise ValueError(f"{model!r} is neither a file nor a timm model name")
                module = timm.create_model(model, pretrained=False, **model_options)
            else:
                raise ValueError(
                    "timm-vit needs an architecture: a timm model name as source or model=..."
                )
        if weights is not None:
            state = load_state_dict_file(weights)
            try:
                missing, unexpected = module.load_state_dict(state, strict=False)
            except RuntimeError as exc:  # shape mismatches
                raise ValueError(f"{weights} does not fit the architecture: {exc}") from None
            if missing or unexpected:
                raise ValueError(
                    f"{weights} does not fit the architecture: missing {sorted(missing)[:8]}, "
                    f"unexpected {sorted(unexpected)[:8]}"
                )
        return cls(module, threshold=threshold, flip=flip, mean=mean, std=std,
                   use_head=use_head, device=device)

    # -- ViTVerifier -----------------------------------------------------------------------
    @property
    def backbone(self) -> VisionTransformer:
        return self.model

    @property
    def grid_size(self) -> tuple[int, int]:
        g = self.model.patch_embed.grid_size
        return (int(g[0]), int(g[1]))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """0..255 RGB -> ``(x / 255 - mean) / std``."""
        mean = torch.tensor(self.mean, dtype=images.dtype, device=images.device)
        std = torch.tensor(self.std, dtype=images.dtype, device=images.device)
        return (images / 255.0 - mean[:, None, None]) / std[:, None, None]

    def class_logits(self, features: torch.Tensor) -> torch.Tensor | None:
        """The classifier's logits of pre-logits ``features`` (None without a head)."""
        if not self.use_head or self.model.num_classes == 0:
            return None
        return self.model.head(features)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Unnormalised pre-logits features (CLS after the final norm) of 0..255 images."""
        x = self.model.forward_features(self.preprocess(images))
        return self.model.forward_head(x, pre_logits=True)

    def embed(self, images: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """L2-normalised embeddings ``(N, D)``; image + flip when ``flip`` is set."""
        images = check_faces(images, self.input_size)
        return normalised_embeddings(self.features, images, self.flip, batch_size, self.device)

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return squared_l2(a, b)
