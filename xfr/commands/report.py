"""``xfr report DIR``: an HTML report of a folder of results, in ``DIR/report/``.

Works on any folder of saved explanations (``<stem>.json`` + ``<stem>.npz``, as ``xfr explain``
and ``xfr explain --pairs`` write them; ``summary.csv`` is read when present), on an
``xfr evaluate`` folder (accuracy, Table 1, curves, paired differences) and on an ``xfr sanity``
folder. The report is a static site: open ``DIR/report/index.html`` in a browser, offline.
``xfr explain`` and ``xfr evaluate`` write it themselves at the end.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

#: One-line help of the command (``xfr --help``).
HELP = "an HTML report of a folder of explanations or of an evaluation"


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report", help=HELP, description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", type=Path, metavar="DIR",
                   help="folder of saved explanations, or of xfr evaluate / xfr sanity")
    p.add_argument("-o", "--out", type=Path, default=None,
                   help="report folder (default: DIR/report)")


def run(args: argparse.Namespace) -> int:
    from xfr.site.report import write_site

    index = write_site(args.dir, args.out)
    print(f"wrote {index}")
    return 0


def write_after(directory: Path, quiet: bool = False) -> None:
    """Write the report of ``directory`` at the end of another command (``xfr explain``,
    ``xfr evaluate``) and say where on stdout (unless ``quiet``: ``xfr explain --json`` keeps
    stdout for its JSON; the report is then in ``DIR/report/index.html`` all the same); a
    report that cannot be written is a warning, never a failure of the command that made the
    results."""
    import sys

    from xfr.errors import UserError

    try:
        from xfr.site.report import write_site

        index = write_site(directory)
    except (UserError, OSError, ValueError) as exc:
        print(f"xfr: warning: no HTML report: {exc}", file=sys.stderr)
        return
    if not quiet:
        print(f"report: {index}")
