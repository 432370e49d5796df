"""Built-in mask selectors (paper Sec. 3.2 eq. 1 SM+, Sec. 3.3 eq. 2 SM-).

Registered through the ``xfr`` entry point ``selectors``: ``metric`` (largest SM+/SM- wins)
and ``fixed`` (``"fixed:oim"``: always the named strategy, the paper's conclusion). Each
declares its options (``Options``; ``xfr plugins --options NAME``).
"""

from __future__ import annotations

from xfr import hookimpl
from xfr_plugins.selectors.fixed import FixedSelector
from xfr_plugins.selectors.metric import MetricSelector

__all__ = ["FixedSelector", "MetricSelector"]


@hookimpl
def xfr_selectors() -> dict[str, type]:
    """``metric`` and ``fixed`` (``factory(argument=None, **options)``)."""
    return {"metric": MetricSelector, "fixed": FixedSelector}


MetricSelector.xfr_options = MetricSelector.Options  # type: ignore[attr-defined]
FixedSelector.xfr_options = FixedSelector.Options  # type: ignore[attr-defined]
