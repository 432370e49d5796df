"""The ``xfr`` command line: ``xfr [--debug] COMMAND ...``.

Each subcommand is a module listed in :data:`COMMANDS` with two functions,
``add_parser(subparsers)`` (adds its ``argparse`` sub-parser) and ``run(args) -> int``. A listed
module that does not exist (yet) is left out silently; one that exists but fails to import is
left out with a warning on stderr, so the other commands keep working. ``xfr COMMAND ...``
imports only that command's module; ``xfr --help`` imports them all.

User errors (``ValueError``, ``LookupError``, missing files, :class:`xfr.errors.UserError`) are
printed as one line ``xfr: error: ...`` on stderr with exit status 2; ``--debug`` shows the
traceback instead. Other exceptions are bugs and keep their traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import sys
import traceback
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from xfr import __version__
from xfr.errors import InputWarning, UserError

#: Subcommand -> module implementing it.
COMMANDS: dict[str, str] = {
    "plugins": "xfr.commands.plugins",
    "explain": "xfr.commands.explain",
    "train": "xfr.commands.train",
    "evaluate": "xfr.commands.evaluate",
    "sanity": "xfr.commands.sanity",
}

#: Exceptions reported as one clean line (exit status 2) instead of a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    UserError,
    ValueError,
    LookupError,
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)

EXIT_USAGE = 2
SUPPRESS_HELP = argparse.SUPPRESS


def _load_commands(only: str | None = None) -> dict[str, ModuleType]:
    modules: dict[str, ModuleType] = {}
    for name, module_name in COMMANDS.items():
        if only is not None and name != only:
            continue
        try:
            if importlib.util.find_spec(module_name) is None:
                continue
        except ModuleNotFoundError:
            continue
        try:
            modules[name] = importlib.import_module(module_name)
        except Exception as exc:
            print(
                f"xfr: warning: command {name!r} is unavailable: {type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
    return modules


def requested_command(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (its first positional argument), if it is known."""
    for arg in argv:
        if arg == "--":
            break
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every available subcommand, or with ``only`` that one (so that
    ``xfr plugins`` does not import the modules of the other commands)."""
    parser = argparse.ArgumentParser(
        prog="xfr",
        description="Explainable face verification for Vision Transformers.",
    )
    parser.add_argument("--version", action="version", version=f"xfr {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show full tracebacks instead of one-line errors"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _load_commands(only).items():
        before = set(subparsers.choices)
        module.add_parser(subparsers)
        for added in set(subparsers.choices) - before:
            sub = subparsers.choices[added]
            sub.set_defaults(_run=module.run)
            # ``xfr COMMAND --debug`` works as well as ``xfr --debug COMMAND``.
            with contextlib.suppress(argparse.ArgumentError):
                sub.add_argument(
                    "--debug", action="store_true", default=argparse.SUPPRESS, help=SUPPRESS_HELP
                )
        if name not in subparsers.choices:
            raise RuntimeError(f"{COMMANDS[name]}.add_parser did not add a {name!r} sub-parser")
    return parser


def _one_line(exc: BaseException) -> str:
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return " ".join(lines) or type(exc).__name__


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """Input warnings (:class:`xfr.errors.InputWarning`) as one line ``xfr: warning: ...``;
    other warnings as Python shows them."""
    if issubclass(category, InputWarning):
        text = " ".join(str(message).split())
        print(f"xfr: warning: {text}", file=sys.stderr if file is None else file)
        return
    _python_showwarning(message, category, filename, lineno, file, line)


_python_showwarning = warnings.showwarning


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(only=requested_command(arguments))
    args = parser.parse_args(arguments)
    run = getattr(args, "_run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(run(args) or 0)
    except KeyboardInterrupt:
        print("xfr: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as exc:
        if args.debug:
            traceback.print_exc()
        else:
            print(f"xfr: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
