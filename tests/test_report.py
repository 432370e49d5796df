"""``xfr report DIR`` without a browser: the files it writes for a folder of real explanations
(``summary.csv`` read, failed pairs listed), for ``xfr explain --demo`` and ``xfr evaluate``
(written at their end; the evaluation's per-pair curves on the pair pages), its one-line
errors, and ``xfr serve``'s errors before any model pass. The pages in a real browser:
``test_browser_report.py``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from xfr.cli import main
from xfr.site.markdown import to_html
from xfr.site.report import MARKER, collect

NEUTRAL_CWD = Path(__file__).resolve().parent


def one_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("xfr: error: "), err
    return err[0]


def test_report_of_explained_lfw_pairs(explained_folder: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "run"
    shutil.copytree(explained_folder, folder, ignore=shutil.ignore_patterns("report"))
    assert main(["report", str(folder)]) == 0
    index = folder / "report" / "index.html"
    assert capsys.readouterr().out.strip() == f"wrote {index}"
    html = index.read_text()
    rows = collect(folder)
    assert [r.stem for r in rows] == ["pair_00000", "pair_00001", "pair_00002", "pair_00003"]
    assert rows[3].status == "failed" and "no face found" in html
    assert all(r.label for r in rows) and rows[0].label == "same"
    for r in rows[:3]:
        page = folder / "report" / f"pair-{r.stem}.html"
        assert page.is_file() and f'href="pair-{r.stem}.html"' in html
        text = page.read_text()
        for side in ("probe", "gallery"):
            for kind in ("photo", "face", "gray", "heat", "attention", "otsu", "overlay"):
                assert (folder / "report" / "img" / r.stem / f"{side}-{kind}.png").is_file()
        assert "Candidate masks" in text and 'id="opacity"' in text
        assert "curves of this pair" not in text  # no evaluation in this folder
    assert (folder / "report" / "assets" / "report.js").is_file()
    assert (folder / "report" / MARKER).is_file()
    # again: the report is replaced, not mixed with the old one
    (folder / "report" / "img" / "stale.png").write_bytes(b"x")
    assert main(["report", str(folder)]) == 0
    assert not (folder / "report" / "img" / "stale.png").exists()


def test_report_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "no such folder" in one_error(capsys)
    (tmp_path / "file.txt").write_text("x")
    assert main(["report", str(tmp_path / "file.txt")]) == 2
    assert "not a folder" in one_error(capsys)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty)]) == 2
    assert "nothing to report" in one_error(capsys)
    (empty / "summary.csv").write_text("index,stem,probe,gallery,status\n")
    (empty / "report").mkdir()
    (empty / "report" / "mine.html").write_text("a page of the user's")
    assert main(["report", str(empty)]) == 2
    assert "was not written by xfr report" in one_error(capsys)
    assert (empty / "report" / "mine.html").is_file()


def test_explain_demo_writes_the_report(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["explain", "--demo", "-o", str(out)]) == 0
    assert f"report: {out / 'report' / 'index.html'}" in capsys.readouterr().out
    index = (out / "report" / "index.html").read_text()
    for stem in ("demo_1", "demo_2"):
        page = (out / "report" / f"pair-{stem}.html").read_text()
        assert "the input was an array, not a file" in page  # the demo's inputs are arrays
        assert f"pair-{stem}.html" in index
    assert 'id="next"' in (out / "report" / "pair-demo_1.html").read_text()


def test_markdown_tables_and_headings() -> None:
    html = to_html("# Title\n\nSome **bold** and `code` <b>.\n\n| a | b |\n|---|---:|\n"
                   "| 1 | 2 |\n\n- one\n  more\n- two\n")
    assert "<h2>Title</h2>" in html and "<strong>bold</strong>" in html
    assert "<code>code</code>" in html and "&lt;b&gt;" in html
    assert '<td style="text-align:right">2</td>' in html
    assert "<li>one more</li><li>two</li>" in html


def test_help_lists_report_and_serve_without_heavy_imports() -> None:
    probe = ("import io, json, sys, contextlib\nfrom xfr import cli\nout = io.StringIO()\n"
             "with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
             "    cli.main(['--help'])\n"
             "print(json.dumps({'help': out.getvalue(), 'mods': sorted(sys.modules)}))")
    info = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True,
                                     text=True, check=True, timeout=120,
                                     cwd=NEUTRAL_CWD).stdout)
    assert "    report " in info["help"] and "    serve " in info["help"]
    heavy = [m for m in info["mods"] if m.split(".")[0] in
             ("torch", "jinja2", "starlette", "uvicorn", "multipart", "matplotlib")]
    assert heavy == []


def test_serve_checks_its_options_before_loading_anything(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--photos", str(tmp_path / "missing")]) == 2
    assert "--photos: no such folder" in one_error(capsys)
    assert main(["serve", "--port", "70000"]) == 2
    assert "--port must be 0..65535" in one_error(capsys)
    assert main(["serve", "--max-upload-mb", "0"]) == 2
    assert "--max-upload-mb must be > 0" in one_error(capsys)


# -- an evaluation folder: its report, and its per-pair curves on the pair pages -------------
PAIRS = """1\t2
Abel_Pacheco\t1\t1
Abel_Pacheco\t1\t4
Abel_Pacheco\t1\tAkhmed_Zakayev\t1
Akhmed_Zakayev\t3\tAbel_Pacheco\t4
"""


@pytest.mark.lfw
@pytest.mark.slow
def test_evaluate_writes_the_report_and_pair_pages_show_its_curves(
        lfw_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from xfr import registry

    src = lfw_root / "lfw-deepfunneled"
    if not src.is_dir():
        src = lfw_root
    for name, numbers in {"Abel_Pacheco": (1, 4), "Akhmed_Zakayev": (1, 3)}.items():
        (tmp_path / "images" / name).mkdir(parents=True)
        for n in numbers:
            f = f"{name}_{n:04d}.jpg"
            shutil.copy(src / name / f, tmp_path / "images" / name / f)
    (tmp_path / "pairs.txt").write_text(PAIRS)
    torch.manual_seed(0)  # a small random model that accepts identical photos only
    v = registry.create("verifier", "face-vit", patch="conv", dim=32, depth=1, heads=2,
                        mlp_dim=64)
    v.threshold = 1e-5
    v.save(tmp_path / "model")
    out = tmp_path / "eval"
    assert main(["evaluate", "--pairs", str(tmp_path / "pairs.txt"), "--root",
                 str(tmp_path / "images"), "--verifier", str(tmp_path / "model"),
                 "--methods", "paper,random-shared", "--generators", "rollout",
                 "--bootstrap", "50", "--no-progress", "--out", str(out)]) == 0
    assert f"report: {out / 'report' / 'index.html'}" in capsys.readouterr().out
    page = (out / "report" / "evaluation.html").read_text()
    assert "Table 1" in page and "deletion_positive.png" in page
    assert (out / "report" / "img" / "evaluation" / "deletion_positive.png").is_file()
    # the identical pair (a true positive) explained into the evaluation's folder
    photo = tmp_path / "images" / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg"
    assert main(["explain", str(photo), str(photo), "--verifier", str(tmp_path / "model"),
                 "--generator", "rollout", "-o", str(out)]) == 0
    pair = (out / "report" / "pair-explanation.html").read_text()
    assert "Deletion and insertion curves of this pair" in pair
    assert (out / "report" / "img" / "explanation" / "curves.png").stat().st_size > 1000
    assert 'href="evaluation.html"' in (out / "report" / "index.html").read_text()
