"""Built-in explainers (registered through the xfr entry point 'explainers'): the paper's
(Sec. 3), the perturbation baselines it is compared with (Sec. 4: MinPlus, AVG, RISE, LIME) and
the field's similarity explainers (xSSAB, CorrRISE, BiLRP; docs/method.md, "Similarity
explainers").

Each factory imports its module on first use, so listing the plugins or explaining with the
paper's method does not import the baselines (SciPy, scikit-image): a shorter cold start. Each
declares its options (:mod:`xfr_plugins.explainers.options`; ``xfr plugins --options NAME``).

The ``paper`` and ``relevance`` factories ask for the registry that builds them (their
``registry`` parameter, docs/hooks.md): the paper explainer's attention generator, mask
strategies and selector, and the relevance explainer's attention generator, are built by that
registry, so an application's own :class:`xfr.registry.Registry` supplies them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from xfr.hookspecs import hookimpl

if TYPE_CHECKING:
    from xfr.registry import Registry

#: name -> (module under xfr_plugins.explainers, class, options class, one-line description).
EXPLAINERS: dict[str, tuple[str, str, str, str]] = {
    "paper": ("paper", "PaperExplainer", "PaperOptions",
              "attention maps, Otsu masks, OIM/UM/N-IUM, SM+/SM- selection (paper Sec. 3)"),
    "relevance": ("relevance", "RelevanceExplainer", "RelevanceExplainerOptions",
                  "the pair's relevance maps at token scale, similarity/dissimilarity target "
                  "(xfr's measured-faithful default; docs/faithfulness.md)"),
    "minplus": ("minplus", "MinPlusExplainer", "MinPlusOptions",
                "MinPlus perturbation baseline (Mery 2022)"),
    "avg": ("avg", "AVGExplainer", "AVGOptions", "AVG perturbation baseline (Mery & Morris 2022)"),
    "rise": ("rise", "RISEExplainer", "RISEOptions",
             "RISE random-mask baseline (Petsiuk et al. 2018)"),
    "lime": ("lime", "LIMEExplainer", "LIMEOptions",
             "LIME superpixel baseline (Ribeiro et al. 2016)"),
    "xssab": ("xssab", "XSSABExplainer", "XSSABOptions",
              "similarity score argument backpropagation (Huber et al., WACV 2024)"),
    "corrrise": ("corrrise", "CorrRISEExplainer", "CorrRISEOptions",
                 "random masks correlated with the similarity (Lu et al., WACV 2024)"),
    "bilrp": ("bilrp", "BiLRPExplainer", "BiLRPOptions",
              "second-order LRP: probe-gallery token interactions (Eberle et al., TPAMI 2022)"),
}


def explainer_class(name: str) -> type:
    """The class of the built-in explainer ``name`` (imports its module)."""
    module, cls, _, _ = EXPLAINERS[name]
    return getattr(importlib.import_module(f"xfr_plugins.explainers.{module}"), cls)


def options_class(name: str) -> type:
    """The options declaration of the built-in explainer ``name``."""
    from xfr_plugins.explainers import options

    return getattr(options, EXPLAINERS[name][2])


def _describe(factory: Callable[..., Any], name: str) -> Callable[..., Any]:
    factory.__name__ = factory.__qualname__ = f"{EXPLAINERS[name][1]}_factory"
    factory.__doc__ = EXPLAINERS[name][3]
    factory.xfr_options = lambda: options_class(name)  # type: ignore[attr-defined]
    return factory


def _factory(name: str) -> Callable[..., Any]:
    def factory(**options: Any) -> Any:
        return explainer_class(name)(**options)

    return _describe(factory, name)


def _paper(*, registry: Registry, **options: Any) -> Any:
    from xfr_plugins.explainers.paper import PaperExplainer

    return PaperExplainer.from_options(registry, **options)


def _relevance(*, registry: Registry, **options: Any) -> Any:
    from xfr_plugins.explainers.relevance import RelevanceExplainer

    return RelevanceExplainer(registry=registry, **options)


#: The factories that ask for the registry that builds them (they build parts there).
_WITH_PARTS: dict[str, Callable[..., Any]] = {"paper": _paper, "relevance": _relevance}


@hookimpl
def xfr_explainers() -> dict[str, Callable[..., Any]]:
    """``paper``, ``relevance``, ``minplus``, ``avg``, ``rise``, ``lime``, ``xssab``,
    ``corrrise``, ``bilrp``; each built on first use."""
    return {name: _describe(_WITH_PARTS[name], name) if name in _WITH_PARTS else _factory(name)
            for name in EXPLAINERS}
