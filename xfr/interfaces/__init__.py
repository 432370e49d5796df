"""The five contracts of xfr (docs/design.md, "The role interfaces").

One role per module, as in xaitk-saliency: a plugin implements one of these and registers a
factory for it through the hook of its kind (:mod:`xfr.hookspecs`).

The names are resolved on first access, so that ``xfr.interfaces.selector`` and
``xfr.interfaces.mask_strategy`` (NumPy only) can be imported without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xfr.interfaces.attention import AttentionGenerator, AttentionTarget
    from xfr.interfaces.explainer import Explainer
    from xfr.interfaces.mask_strategy import Decision, MaskStrategy
    from xfr.interfaces.selector import Selection, Selector
    from xfr.interfaces.verifier import Verifier, ViTVerifier

_MODULES = {
    "AttentionGenerator": "attention",
    "AttentionTarget": "attention",
    "Decision": "mask_strategy",
    "Explainer": "explainer",
    "MaskStrategy": "mask_strategy",
    "Selection": "selector",
    "Selector": "selector",
    "Verifier": "verifier",
    "ViTVerifier": "verifier",
}

__all__ = [
    "AttentionGenerator",
    "AttentionTarget",
    "Decision",
    "Explainer",
    "MaskStrategy",
    "Selection",
    "Selector",
    "Verifier",
    "ViTVerifier",
]


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return getattr(importlib.import_module(f"xfr.interfaces.{_MODULES[name]}"), name)
    raise AttributeError(f"module 'xfr.interfaces' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULES))
