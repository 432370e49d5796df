"""What a user expects of the command line (issue 16): ``xfr --help`` without torch,
``--device``/``--threads`` on the commands that run a model, every default in the help texts,
``xfr plugins`` with descriptions and missing optional dependencies marked."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from xfr import cli

NEUTRAL_CWD = Path(__file__).resolve().parent

HELP_PROBE = r"""
import contextlib, io, json, sys, time
from xfr import cli
start = time.perf_counter()
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
    cli.main(["--help"])
print(json.dumps({"seconds": time.perf_counter() - start, "help": out.getvalue(),
                  "heavy": sorted(m for m in sys.modules
                                  if m.split(".")[0] in ("torch", "timm", "cv2", "matplotlib",
                                                         "xfr_plugins"))}))
"""


def test_xfr_help_lists_every_command_without_importing_torch() -> None:
    out = subprocess.run([sys.executable, "-c", HELP_PROBE], capture_output=True, text=True,
                         check=True, timeout=120, cwd=NEUTRAL_CWD)
    info = json.loads(out.stdout)
    assert info["heavy"] == []  # was torch, timm and every plugin: 1.7 s idle
    for command in ("plugins", "explain", "train", "evaluate", "sanity"):
        assert f"    {command} " in info["help"]
    assert "the paper's evaluation (Sec. 4: Table 1, Fig. 2)" in info["help"]


@pytest.mark.parametrize(("command", "flag", "default"), [
    ("explain", "--out", "xfr-explanation"),
    ("explain", "--method", "relevance"),
    ("explain", "--detector", "yunet"),
    ("evaluate", "--batch-size", "32"),
    ("train", "--calibration-folds", "7,8"),
    ("train", "--grayscale", "0.2"),
])
def test_help_texts_show_the_defaults(
    command: str, flag: str, default: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split("options:", 1)[1].split())
    after = text[text.index(f"{flag} "):]
    assert f"(default: {default}" in after[:400] or f"default: {default})" in after[:400]


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory, lfw_root: Path) -> tuple[str, str]:
    from xfr.align import align
    from xfr.data.lfw import image_folder

    folder = tmp_path_factory.mktemp("crops")
    out = []
    for i, name in enumerate(("Aaron_Peirsol_0001.jpg", "Abel_Pacheco_0001.jpg")):
        path = folder / f"crop{i}.png"
        Image.fromarray(align(image_folder(lfw_root) / name.rsplit("_", 1)[0] / name)).save(path)
        out.append(str(path))
    return out[0], out[1]


def test_device_and_threads_run_the_model_there(
    crops: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    from xfr import api

    monkeypatch.setattr(api, "_default_device", None)  # restored after the test
    before = torch.get_num_threads()
    try:
        code = cli.main(["explain", *crops, "--device", "cpu", "--threads", "1",
                         "-o", str(tmp_path), "--json"])
        assert code == 0, capsys.readouterr().err
        assert torch.get_num_threads() == 1
        assert json.loads(capsys.readouterr().out)["decision"] in ("positive", "negative")
        assert api._default_device == "cpu"
        assert api.load_verifier("default").device == torch.device("cpu")
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(("flags", "message"), [
    (["--threads", "0"], "--threads must be >= 1, got 0"),
    (["--device", "potato"], "unknown device 'potato'; use cpu, cuda or cuda:N"),
    (["--device", "cuda:99"], "device 'cuda:99': "),
])
def test_bad_device_or_threads_are_one_line(
    flags: list[str], message: str, crops: tuple[str, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from xfr import api

    monkeypatch.setattr(api, "_default_device", None)
    assert cli.main(["explain", *crops, *flags, "-o", str(tmp_path / "out")]) == 2
    err = "".join(ln for ln in capsys.readouterr().err.splitlines(keepends=True)
                  if not ln.startswith("xfr: warning: "))
    assert err.startswith(f"xfr: error: {message}") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_xfr_plugins_describes_each_plugin_and_marks_missing_dependencies(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "dlib", None)  # as without the xfr[dlib] extra
    assert cli.main(["plugins", "--kind", "verifier"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    [i] = [k for k, line in enumerate(lines) if line.split()[:2] == ["verifier", "dlib"]]
    assert "dlib (missing deps)" in lines[i]
    assert lines[i + 1].strip().startswith("dlib's face-recognition ResNet")  # its description
    assert "verifier 'dlib' needs dlib, which cannot be imported here: pip install 'xfr[dlib]'" \
        in out
    [j] = [k for k, line in enumerate(lines) if line.split()[:2] == ["verifier", "face-vit"]]
    assert "missing" not in lines[j] and "bundled model" in lines[j + 1]
    assert cli.main(["plugins", "--kind", "verifier", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    by_name = {p["name"]: p for p in data["providers"]}
    assert by_name["dlib"]["missing"] == ["dlib"] and by_name["face-vit"]["missing"] == []


def test_the_multi_face_warning_is_one_line_naming_the_image_and_the_face(
    lfw_root: Path, tmp_path: Path, crops: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    import cv2
    import numpy as np

    from xfr.align import load_image
    from xfr.data.lfw import image_folder

    folder = image_folder(lfw_root)
    big = load_image(folder / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg")
    small = cv2.resize(load_image(folder / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg"), (150, 150))
    canvas = np.zeros((250, 400, 3), np.uint8)
    canvas[:, :250] = big
    canvas[50:200, 250:] = small
    group = tmp_path / "group.png"
    Image.fromarray(canvas).save(group)
    # A bad option stops the run before the images are read.
    assert cli.main(["explain", str(group), crops[1], "--method", "paper", "--strategies", "nope",
                     "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("xfr: error: unknown mask 'nope'")
    # The options fail first: the images are not read yet. With good options they are.
    assert cli.main(["explain", str(group), crops[1], "--verifier", str(tmp_path / "none"),
                     "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.splitlines()
    warning = [line for line in err if line.startswith("xfr: warning: ") and "faces" in line]
    assert len(warning) == 1 and "UserWarning" not in "".join(err)
    assert re.fullmatch(rf"xfr: warning: {re.escape(str(group))}: 2 faces found; using the "
                        r"largest, \d+x\d+ px at x=\d+, y=\d+", warning[0])
    assert err[-1].startswith("xfr: error: no xfr model folder")


def test_a_single_pair_on_a_pipe_writes_no_progress(
    crops: tuple[str, str], tmp_path: Path
) -> None:
    """Not on a terminal (a log file, CI), one pair: no progress-bar redraws and no status
    line (stderr stays free for the one error line a failure gives); stdout keeps only the
    results. Several pairs (--demo) get one plain status line each."""
    run = subprocess.run([sys.executable, "-m", "xfr", "explain", *crops, "-o", str(tmp_path),
                          "--json"], capture_output=True, text=True, timeout=600,
                         cwd=NEUTRAL_CWD)
    assert run.returncode == 0, run.stderr
    assert [ln for ln in run.stderr.splitlines() if not ln.startswith("xfr: warning: ")] == []
    assert "\r" not in run.stderr
    assert json.loads(run.stdout)["decision"] in ("positive", "negative")


def test_train_takes_device_and_threads_and_checks_them_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from xfr import api

    monkeypatch.setattr(api, "_default_device", None)
    assert cli.main(["train", "--out", str(tmp_path / "out"), "--device", "potato"]) == 2
    assert capsys.readouterr().err.startswith("xfr: error: unknown device 'potato'")
    assert cli.main(["train", "--out", str(tmp_path / "out"), "--threads", "0"]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
