"""Built-in attention generators (paper Sec. 3.1), registered through the ``xfr`` entry point
``attention``:

- ``attention``: the last block's CLS attention (:mod:`raw_attention`);
- ``rollout``: attention rollout, ``variant="authors"`` (default) or ``"abnar"`` (:mod:`rollout`);
- ``vit-lrp``: Chefer et al.'s transformer attribution (:mod:`vit_lrp`);
- ``nograd-lrp``: the same without gradients (:mod:`nograd_lrp`);
- ``grad-rollout``: gradient-weighted rollout (:mod:`grad_rollout`).

All work on any verifier with a timm-structured ViT backbone (the ViTVerifier contract),
batched, on the CPU or a GPU. Importing this package loads no torch module: the factories
import their generator on first use. Each declares its options
(:mod:`xfr_plugins.attention.options`; ``xfr plugins --options NAME``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xfr.hookspecs import hookimpl


def _raw_attention(**options: Any) -> Any:
    from xfr_plugins.attention.raw_attention import RawAttention

    return RawAttention(**options)


def _rollout(**options: Any) -> Any:
    from xfr_plugins.attention.rollout import Rollout

    return Rollout(**options)


def _vit_lrp(**options: Any) -> Any:
    from xfr_plugins.attention.vit_lrp import ViTLRP

    return ViTLRP(**options)


def _nograd_lrp(**options: Any) -> Any:
    from xfr_plugins.attention.nograd_lrp import NoGradLRP

    return NoGradLRP(**options)


def _grad_rollout(**options: Any) -> Any:
    from xfr_plugins.attention.grad_rollout import GradRollout

    return GradRollout(**options)


def _declared(factory: Any, options: str) -> Any:
    """``factory`` with its options declaration (``xfr_options``; imported on first use)."""
    def declaration() -> type:
        from xfr_plugins.attention import options as module

        return getattr(module, options)

    factory.xfr_options = declaration
    return factory


for _factory, _options in ((_raw_attention, "RawAttentionOptions"), (_rollout, "RolloutOptions"),
                           (_vit_lrp, "ViTLRPOptions"), (_nograd_lrp, "NoGradLRPOptions"),
                           (_grad_rollout, "GradRolloutOptions")):
    _declared(_factory, _options)


@hookimpl
def xfr_attention_generators() -> Mapping[str, Any]:
    return {
        "attention": _raw_attention,
        "rollout": _rollout,
        "vit-lrp": _vit_lrp,
        "nograd-lrp": _nograd_lrp,
        "grad-rollout": _grad_rollout,
    }
