"""xfr: explainable face verification for Vision Transformers.

``import xfr`` is cheap: it loads no plugin, builds no model and starts no thread. Plugins are
discovered on first use of :mod:`xfr.registry`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xfr.hookspecs import hookimpl

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

    __version__: str


def __getattr__(name: str) -> Any:
    # Lazy attributes keep ``import xfr`` free of torch, plugins and threads.
    if name == "__version__":
        # Written once, in pyproject.toml; read from the installed package's metadata (xfr is
        # always installed: its plugins are found through its entry points, its kernels built).
        import importlib.metadata

        version = importlib.metadata.version("xfr")
        globals()["__version__"] = version
        return version
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
