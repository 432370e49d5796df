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
import atexit
import contextlib
import importlib
import importlib.util
import os
import sys
import threading
import traceback
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import Any, NoReturn

from xfr import __version__
from xfr.errors import InputWarning, OptionError, UserError

#: Subcommand -> module implementing it.
COMMANDS: dict[str, str] = {
    "plugins": "xfr.commands.plugins",
    "explain": "xfr.commands.explain",
    "train": "xfr.commands.train",
    "evaluate": "xfr.commands.evaluate",
    "sanity": "xfr.commands.sanity",
    "report": "xfr.commands.report",
    "serve": "xfr.commands.serve",
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


#: Commands that run a model: they get ``--device`` and ``--threads``.
MODEL_COMMANDS = ("explain", "evaluate", "sanity", "train", "serve")


def command_help(module: ModuleType) -> str:
    """A command's one-line help without building its parser: the module's ``HELP``, else the
    first sentence of its docstring without the leading ``xfr NAME``."""
    text = getattr(module, "HELP", None)
    if isinstance(text, str) and text:
        return text
    first = (module.__doc__ or "").strip().split("\n\n")[0]
    first = " ".join(first.split())
    if first.startswith("``") and "``:" in first:
        first = first.split("``:", 1)[1].strip()
    first = first.rstrip(".")
    return first if len(first) <= 90 else first[:87].rsplit(" ", 1)[0] + "..."


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Append ``(default: ...)`` to every option help that has a default and does not say it."""
    for action in parser._actions:
        help_text = action.help
        if (not help_text or help_text == argparse.SUPPRESS
                or action.default is None or action.default is False or action.default == []
                or action.default is argparse.SUPPRESS or "default" in help_text.lower()
                or isinstance(action, (argparse._HelpAction, argparse._VersionAction))):
            continue
        action.help = help_text + " (default: %(default)s)"


def _add_model_options(sub: argparse.ArgumentParser) -> None:
    with contextlib.suppress(argparse.ArgumentError):
        sub.add_argument("--device", default=None, metavar="DEVICE",
                         help="where the model runs: cpu, cuda or cuda:N (default: cpu)")
    with contextlib.suppress(argparse.ArgumentError):
        sub.add_argument("--threads", type=int, default=None, metavar="N",
                         help="CPU threads of the model passes (default: PyTorch's, one per "
                              "core)")


def build_parser(only: str | None = None, summary: bool = False) -> argparse.ArgumentParser:
    """The parser with every available subcommand, or with ``only`` that one (so that
    ``xfr plugins`` does not import the modules of the other commands).

    ``summary=True`` (``xfr --help``, ``xfr`` alone) lists the commands with their one-line
    help (:func:`command_help`) without building their parsers: their defaults may need heavy
    imports (torch), which ``xfr --help`` does not pay."""
    parser = argparse.ArgumentParser(
        prog="xfr",
        description="Explainable face verification for Vision Transformers.",
        epilog="Run 'xfr COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"xfr {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show full tracebacks instead of one-line errors"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _load_commands(only).items():
        if summary:
            subparsers.add_parser(name, help=command_help(module))
            continue
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
            if added in MODEL_COMMANDS:
                _add_model_options(sub)
            _show_defaults(sub)
        if name not in subparsers.choices:
            raise RuntimeError(f"{COMMANDS[name]}.add_parser did not add a {name!r} sub-parser")
    return parser


def apply_model_options(args: argparse.Namespace) -> None:
    """``--threads`` and ``--device`` of a model command, checked before anything loads."""
    if getattr(args, "command", None) not in MODEL_COMMANDS:
        return
    threads = getattr(args, "threads", None)
    device = getattr(args, "device", None)
    if threads is not None and threads < 1:
        raise OptionError(f"--threads must be >= 1, got {threads}")
    if threads is None and device is None:
        return
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    if device is not None:
        from xfr.api import set_default_device

        set_default_device(device)


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
    only = requested_command(arguments)
    parser = build_parser(only=only, summary=only is None)
    args = parser.parse_args(arguments)
    run = getattr(args, "_run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        apply_model_options(args)
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


def console() -> NoReturn:
    """The ``xfr`` console script (and ``python -m xfr``): :func:`main`, then the end of the
    process without the interpreter's teardown of its modules.

    A process that loaded PyTorch and timm spends about 0.8 s at exit clearing their modules
    (measured on 2 CPU cores: ``import torch, timm`` ends in 3.2 s, 2.35 s of it the imports).
    By the time :func:`main` returns, every file of the command is written and closed, so the
    exit handlers are run (``atexit``: logging, temporary folders, Ray) and the process ends
    there (daemon threads such as tqdm's monitor end with it). With other threads still alive the
    interpreter exits as usual, waiting for them.
    """
    code = main()
    _flush()
    if all(t.daemon or t is threading.main_thread() for t in threading.enumerate()):
        atexit._run_exitfuncs()
        _flush()
        os._exit(code)
    sys.exit(code)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe or stream
            stream.flush()


if __name__ == "__main__":
    console()
