"""Built-in explainers (registered through the xfr entry point 'explainers')."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xfr.hookspecs import hookimpl


@hookimpl
def xfr_explainers() -> Mapping[str, Any]:
    from xfr_plugins.explainers.paper import PaperExplainer

    found: dict[str, Any] = {"paper": PaperExplainer}
    return found
