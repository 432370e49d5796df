"""The five contracts of xfr (DESIGN.md, "The contracts").

One role per module, as in xaitk-saliency: a plugin implements one of these and registers a
factory for it through the hook of its kind (:mod:`xfr.hookspecs`).
"""

from xfr.interfaces.attention import AttentionGenerator, AttentionTarget
from xfr.interfaces.explainer import Explainer
from xfr.interfaces.mask_strategy import Decision, MaskStrategy
from xfr.interfaces.selector import Selection, Selector
from xfr.interfaces.verifier import Verifier, ViTVerifier

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
