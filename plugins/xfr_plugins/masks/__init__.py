"""Built-in mask strategies OIM, UM and N-IUM (paper Sec. 3.2-3.3).

Registered through the ``xfr`` entry point ``masks`` (``pyproject.toml``), exactly as a third
party's plugin would be: ``xfr.registry.create("mask", "oim")``.
"""

from __future__ import annotations

from xfr import hookimpl
from xfr_plugins.masks.nium import NonIntersectingUnifiedMask
from xfr_plugins.masks.oim import OnlyIntersectionMask
from xfr_plugins.masks.um import UnifiedMask

__all__ = ["NonIntersectingUnifiedMask", "OnlyIntersectionMask", "UnifiedMask"]


@hookimpl
def xfr_mask_strategies() -> dict[str, type]:
    """``oim``, ``um`` (both decisions) and ``nium`` (negative decisions only): the names and
    decisions of :data:`xfr.interfaces.vocabulary.PAPER_STRATEGIES`."""
    return {
        cls.name: cls for cls in (OnlyIntersectionMask, UnifiedMask, NonIntersectingUnifiedMask)
    }
