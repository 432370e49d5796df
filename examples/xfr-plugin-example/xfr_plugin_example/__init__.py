"""An example third-party xfr plugin (entry point ``probe_only`` of the group ``xfr``)."""

from __future__ import annotations

import xfr
from xfr_plugin_example.probe_only import ProbeOnlyMask

__all__ = ["ProbeOnlyMask", "xfr_mask_strategies"]


@xfr.hookimpl
def xfr_mask_strategies() -> dict[str, type]:
    """Provide the mask strategy ``probe-only``."""
    return {"probe-only": ProbeOnlyMask}
