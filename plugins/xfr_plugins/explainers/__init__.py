"""Built-in explainers (registered through the xfr entry point 'explainers'): the paper's
(Sec. 3), the perturbation baselines it is compared with (Sec. 4: MinPlus, AVG, RISE, LIME) and
the field's similarity explainers (xSSAB, CorrRISE, BiLRP; docs/method.md, "Similarity
explainers").

Each factory imports its module on first use, so listing the plugins or explaining with the
paper's method does not import the baselines (SciPy, scikit-image): a shorter cold start.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from xfr.hookspecs import hookimpl

#: name -> (module under xfr_plugins.explainers, class, one-line description).
EXPLAINERS: dict[str, tuple[str, str, str]] = {
    "paper": ("paper", "PaperExplainer",
              "attention maps, Otsu masks, OIM/UM/N-IUM, SM+/SM- selection (paper Sec. 3)"),
    "relevance": ("relevance", "RelevanceExplainer",
                  "the pair's relevance maps at token scale, similarity/dissimilarity target "
                  "(xfr's measured-faithful default; docs/faithfulness.md)"),
    "minplus": ("minplus", "MinPlusExplainer", "MinPlus perturbation baseline (Mery 2022)"),
    "avg": ("avg", "AVGExplainer", "AVG perturbation baseline (Mery & Morris 2022)"),
    "rise": ("rise", "RISEExplainer", "RISE random-mask baseline (Petsiuk et al. 2018)"),
    "lime": ("lime", "LIMEExplainer", "LIME superpixel baseline (Ribeiro et al. 2016)"),
    "xssab": ("xssab", "XSSABExplainer",
              "similarity score argument backpropagation (Huber et al., WACV 2024)"),
    "corrrise": ("corrrise", "CorrRISEExplainer",
                 "random masks correlated with the similarity (Lu et al., WACV 2024)"),
    "bilrp": ("bilrp", "BiLRPExplainer",
              "second-order LRP: probe-gallery token interactions (Eberle et al., TPAMI 2022)"),
}


def explainer_class(name: str) -> type:
    """The class of the built-in explainer ``name`` (imports its module)."""
    module, cls, _ = EXPLAINERS[name]
    return getattr(importlib.import_module(f"xfr_plugins.explainers.{module}"), cls)


def _factory(name: str) -> Callable[..., Any]:
    def factory(**options: Any) -> Any:
        return explainer_class(name)(**options)

    factory.__name__ = factory.__qualname__ = f"{EXPLAINERS[name][1]}_factory"
    factory.__doc__ = EXPLAINERS[name][2]
    return factory


@hookimpl
def xfr_explainers() -> dict[str, Callable[..., Any]]:
    """``paper``, ``relevance``, ``minplus``, ``avg``, ``rise``, ``lime``, ``xssab``,
    ``corrrise``, ``bilrp``; each built on first use."""
    return {name: _factory(name) for name in EXPLAINERS}
