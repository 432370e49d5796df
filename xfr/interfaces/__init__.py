"""The five contracts of xfr (docs/design.md, "The role interfaces").

One role per module, as in xaitk-saliency: a plugin implements one of these and registers a
factory for it through the hook of its kind (:mod:`xfr.hookspecs`).

The names are resolved on first access, so that ``xfr.interfaces.selector`` and
``xfr.interfaces.mask_strategy`` (NumPy only) can be imported without importing torch.

Re-exported here as well: the paper's vocabulary (:mod:`xfr.interfaces.vocabulary`: the
decisions and the rule that takes them, the mask strategies and the decisions each explains,
the smoothing constants), pure Python, and the one check of face images
(:mod:`xfr.interfaces.images`), which imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xfr.interfaces.attention import AttentionGenerator, AttentionTarget
    from xfr.interfaces.explainer import Explainer
    from xfr.interfaces.images import check_face_pairs, check_faces
    from xfr.interfaces.mask_strategy import MaskStrategy
    from xfr.interfaces.selector import Selection, Selector
    from xfr.interfaces.verifier import Verifier, ViTVerifier
    from xfr.interfaces.vocabulary import (
        BEST_STRATEGY,
        DECISIONS,
        DILATE_SIZE,
        GAUSSIAN_SIGMA,
        GAUSSIAN_SIGMA_DIVISOR,
        GAUSSIAN_SIZE,
        NEGATIVE,
        PAPER_STRATEGIES,
        POSITIVE,
        Decision,
        PaperStrategy,
        decide,
        is_positive,
        paper_strategies,
        strategy_label,
    )

_VOCABULARY = (
    "BEST_STRATEGY",
    "DECISIONS",
    "DILATE_SIZE",
    "GAUSSIAN_SIGMA",
    "GAUSSIAN_SIGMA_DIVISOR",
    "GAUSSIAN_SIZE",
    "NEGATIVE",
    "PAPER_STRATEGIES",
    "POSITIVE",
    "Decision",
    "PaperStrategy",
    "decide",
    "is_positive",
    "paper_strategies",
    "strategy_label",
)

_MODULES = {
    "AttentionGenerator": "attention",
    "AttentionTarget": "attention",
    "Explainer": "explainer",
    "MaskStrategy": "mask_strategy",
    "Selection": "selector",
    "Selector": "selector",
    "Verifier": "verifier",
    "ViTVerifier": "verifier",
    "check_face_pairs": "images",
    "check_faces": "images",
    **{name: "vocabulary" for name in _VOCABULARY},
}

__all__ = [
    "AttentionGenerator",
    "AttentionTarget",
    "BEST_STRATEGY",
    "DECISIONS",
    "DILATE_SIZE",
    "GAUSSIAN_SIGMA",
    "GAUSSIAN_SIGMA_DIVISOR",
    "GAUSSIAN_SIZE",
    "NEGATIVE",
    "PAPER_STRATEGIES",
    "POSITIVE",
    "Decision",
    "Explainer",
    "MaskStrategy",
    "PaperStrategy",
    "Selection",
    "Selector",
    "Verifier",
    "ViTVerifier",
    "check_face_pairs",
    "check_faces",
    "decide",
    "is_positive",
    "paper_strategies",
    "strategy_label",
]


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return getattr(importlib.import_module(f"xfr.interfaces.{_MODULES[name]}"), name)
    raise AttributeError(f"module 'xfr.interfaces' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULES))
