"""HTML views of xfr's results: the static report of a folder (``xfr report DIR``,
:func:`write_site`) and the pages of ``xfr serve`` (:mod:`xfr.site.serve`).

Importing this package imports neither torch nor jinja2 (the report writer loads jinja2 when it
runs); the web app's dependencies are the optional extra ``xfr[web]``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["write_site"]


def write_site(directory: Any, out: Any = None) -> Any:
    """Write the HTML report of ``directory`` (see :func:`xfr.site.report.write_site`)."""
    from xfr.site.report import write_site as _write_site

    return _write_site(directory, out)
