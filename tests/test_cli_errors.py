"""The ``xfr`` dispatcher: subcommands from :data:`xfr.cli.COMMANDS`, missing ones skipped,
user errors as one clean line with exit status 2, tracebacks only with ``--debug``."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from xfr import cli, registry

COMMAND = """
import argparse
from xfr.errors import UserError

ERRORS = {
    "value": ValueError("threshold must be > 0, got -1"),
    "file": FileNotFoundError(2, "No such file or directory", "probe.jpg"),
    "lookup": KeyError("unknown verifier 'vit-x'; known verifier names: face-vit"),
    "user": UserError("no face found in probe.jpg\\ntry a larger image"),
    "bug": ZeroDivisionError("division by zero"),
}

def add_parser(subparsers):
    p = subparsers.add_parser("fail", help="raise an error")
    p.add_argument("what", choices=sorted(ERRORS) + ["none"])

def run(args: argparse.Namespace) -> int:
    if args.what == "none":
        print("ran")
        return 0
    raise ERRORS[args.what]
"""


@pytest.fixture
def fail_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real command module ``fail`` added to ``COMMANDS``."""
    name = f"xfrtest_cmd_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(COMMAND))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "COMMANDS", {**cli.COMMANDS, "fail": name})
    yield name
    sys.modules.pop(name, None)


@pytest.mark.parametrize(
    ("what", "message"),
    [
        ("value", "xfr: error: threshold must be > 0, got -1"),
        ("file", "xfr: error: [Errno 2] No such file or directory: 'probe.jpg'"),
        ("lookup", "xfr: error: unknown verifier 'vit-x'; known verifier names: face-vit"),
        ("user", "xfr: error: no face found in probe.jpg try a larger image"),
    ],
)
def test_user_errors_print_one_line_and_exit_2(
    fail_command: str, what: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["fail", what]) == 2
    err = capsys.readouterr().err
    assert err == message + "\n"


def test_debug_shows_the_traceback_before_or_after_the_command(
    fail_command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (["--debug", "fail", "value"], ["fail", "value", "--debug"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err
        assert "ValueError: threshold must be > 0" in err


def test_a_bug_keeps_its_traceback(fail_command: str) -> None:
    with pytest.raises(ZeroDivisionError):
        cli.main(["fail", "bug"])


def test_a_command_returns_its_exit_status(
    fail_command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["fail", "none"]) == 0
    assert capsys.readouterr().out == "ran\n"


def test_listed_commands_whose_module_does_not_exist_are_skipped_silently(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        cli, "COMMANDS", {"plugins": "xfr.commands.plugins", "later": "xfr.commands.not_yet"}
    )
    parser = cli.build_parser()
    assert capsys.readouterr().err == ""
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sorted(sub.choices) == ["plugins"]


def test_a_command_module_that_fails_to_import_is_left_out_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"xfrtest_cmd_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("import xfr_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "COMMANDS", {"plugins": "xfr.commands.plugins", "broken": name})
    parser = cli.build_parser()
    err = capsys.readouterr().err
    assert "xfr: warning: command 'broken' is unavailable: ModuleNotFoundError" in err
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sorted(sub.choices) == ["plugins"]


def test_no_command_prints_the_usage_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Only 'plugins': the other commands' modules import torch, irrelevant here.
    monkeypatch.setattr(cli, "COMMANDS", {"plugins": "xfr.commands.plugins"})
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert "usage: xfr" in err and "plugins" in err


def test_the_console_script_runs_the_cli_main_then_exits_fast() -> None:
    import importlib.metadata

    [script] = [
        ep for ep in importlib.metadata.entry_points(group="console_scripts") if ep.name == "xfr"
    ]
    assert script.value == "xfr.cli:console"
    assert script.load() is cli.console


def test_the_fast_exit_keeps_the_status_the_output_and_the_exit_handlers(
        tmp_path: Path) -> None:
    """``console`` ends the process with ``os._exit`` after ``main``: the exit status, what
    was printed, and what ``atexit`` handlers do must all survive it."""
    import subprocess

    marker = tmp_path / "atexit-ran"
    probe = (
        "import atexit, pathlib, sys\n"
        "from xfr import cli\n"
        f"atexit.register(pathlib.Path({str(marker)!r}).write_text, 'yes')\n"
        "sys.argv = ['xfr', 'explain', 'no-such-probe.jpg', 'no-such-gallery.jpg']\n"
        "cli.console()\n"
        "raise SystemExit('console returned')\n"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert run.returncode == 2
    assert run.stderr.strip().startswith("xfr: error:") and "no-such-probe.jpg" in run.stderr
    assert "console returned" not in run.stderr
    assert marker.read_text() == "yes"


def test_running_one_command_imports_only_that_commands_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"xfrtest_cmd_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("raise RuntimeError('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("XFR_DISABLE_PLUGINS", "verifiers,attention,explainers")
    monkeypatch.setattr(registry, "_default", None)  # a fresh default, restored afterwards
    monkeypatch.setattr(cli, "COMMANDS", {"plugins": "xfr.commands.plugins", "other": name})
    assert cli.main(["--debug", "plugins", "--kind", "selector"]) == 0
    captured = capsys.readouterr()
    assert "metric" in captured.out
    assert captured.err == ""  # the other module was never imported
    assert cli.requested_command(["--debug", "plugins", "--json"]) == "plugins"
    assert cli.requested_command(["--help"]) is None
    assert cli.requested_command(["plugin"]) is None
