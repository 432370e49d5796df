"""Built-in verifiers: ``face-vit`` (the Face Transformer family) and black boxes (``sface``)."""

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


def _timm_vit(source: Any = None, **options: Any) -> Any:
    from xfr_plugins.verifiers.timm_vit import TimmViTVerifier

    return TimmViTVerifier.load(source, **options)


@hookimpl
def xfr_verifiers() -> Mapping[str, Any]:
    return {"face-vit": _face_vit, "sface": _sface, "timm-vit": _timm_vit}
