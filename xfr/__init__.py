"""xfr: explainable face verification for Vision Transformers.

``import xfr`` is cheap: it loads no plugin, builds no model and starts no thread. Plugins are
discovered on first use of :mod:`xfr.registry`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xfr.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "Explanation",
    "__version__",
    "explain",
    "explain_pairs",
    "hookimpl",
    "load_verifier",
    "registry",
]

if TYPE_CHECKING:
    from xfr import registry
    from xfr.api import explain, explain_pairs, load_verifier
    from xfr.explanation import Explanation


def __getattr__(name: str) -> Any:
    # Lazy attributes keep ``import xfr`` free of torch, plugins and threads.
    if name in {"explain", "explain_pairs", "load_verifier"}:
        from xfr import api

        return getattr(api, name)
    if name == "Explanation":
        from xfr.explanation import Explanation

        return Explanation
    if name == "registry":
        import importlib

        return importlib.import_module("xfr.registry")
    raise AttributeError(f"module 'xfr' has no attribute {name!r}")
