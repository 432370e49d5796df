"""The subcommands of ``xfr`` (:mod:`xfr.cli`), one module each.

A command module defines ``add_parser(subparsers) -> None`` (adds one sub-parser named after the
command) and ``run(args: argparse.Namespace) -> int`` (the exit status). Keep heavy imports
(torch, models) inside ``run``: every module is imported to build ``xfr --help``. Raise
``ValueError``/``FileNotFoundError``/``LookupError``/:class:`xfr.errors.UserError` for mistakes
the user can fix; the CLI prints them as one line.
"""
