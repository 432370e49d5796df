"""Built-in verifiers: ``face-vit`` (xfr's format), ``face-transformer`` (the public Face
Transformer checkpoints), ``timm-vit`` (any timm ViT) and the black boxes ``sface`` and
``dlib`` (optional: ``pip install "xfr[dlib]"``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xfr.hookspecs import hookimpl


def _face_vit(source: Any = None, **options: Any) -> Any:
    from xfr_plugins.verifiers.face_vit import FaceViTVerifier

    return FaceViTVerifier.load(source, **options)


def _sface(source: Any = None, **options: Any) -> Any:
    from xfr_plugins.verifiers.sface import SFaceVerifier

    return SFaceVerifier(source, **options)


def _dlib(source: Any = None, **options: Any) -> Any:
    from xfr_plugins.verifiers.dlib_resnet import DlibVerifier

    return DlibVerifier(source, **options)


def _timm_vit(source: Any = None, **options: Any) -> Any:
    from xfr_plugins.verifiers.timm_vit import TimmViTVerifier

    return TimmViTVerifier.load(source, **options)


def _face_transformer(source: Any = None, **options: Any) -> Any:
    if source is None:
        raise ValueError("face-transformer needs a checkpoint: "
                         "create('verifier', 'face-transformer:/path/to/Backbone_VIT.pth')")
    from xfr_plugins.verifiers.face_transformer_checkpoint import load_face_transformer

    return load_face_transformer(source, **options)


@hookimpl
def xfr_verifiers() -> Mapping[str, Any]:
    return {"face-vit": _face_vit, "face-transformer": _face_transformer, "sface": _sface,
            "dlib": _dlib, "timm-vit": _timm_vit}
