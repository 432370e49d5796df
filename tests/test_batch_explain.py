"""``xfr explain --pairs``: every pair of a list, one result each plus ``summary.csv``; resumes;
a failing pair is recorded and the run goes on (exit status 1); bad input is one line, exit 2,
before any model pass. Real LFW faces and the bundled model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from batch_lists import summary, write_list

from xfr import cli
from xfr.batch import (
    SUMMARY_COLUMNS,
    BatchSettings,
    config_hash,
    configuration,
    done_before,
    read_batch_pairs,
    run_batch,
)
from xfr.data.pairs import read_csv_pairs, read_listed_pairs
from xfr.defaults import DEFAULT_METHOD

pytestmark = pytest.mark.lfw


# -- the list (no model) ----------------------------------------------------------------------
def test_csv_lists_take_labels_and_ids_optionally(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x/1.jpg,y/2.jpg\nx/1.jpg,x/3.jpg,1\n")
    got = read_listed_pairs(tmp_path / "a.csv", tmp_path)
    assert [(p.probe.name, p.same, p.id) for p in got] == [("1.jpg", None, None),
                                                           ("1.jpg", True, None)]
    (tmp_path / "b.csv").write_text("id,gallery,probe\nfirst,g.jpg,p.jpg\n")
    (b,) = read_listed_pairs(tmp_path / "b.csv", tmp_path)
    assert (b.probe.name, b.gallery.name, b.same, b.id) == ("p.jpg", "g.jpg", None, "first")
    assert [p.stem for p in read_batch_pairs(tmp_path / "a.csv", tmp_path)] == [
        "pair_00000", "pair_00001"]
    # a third column without a header is the label; a name there is explained
    (tmp_path / "c.csv").write_text("x/1.jpg,y/2.jpg,first\n")
    with pytest.raises(ValueError, match="header row such as 'probe,gallery,id'"):
        read_listed_pairs(tmp_path / "c.csv", tmp_path)
    # xfr evaluate's reader still needs the labels
    with pytest.raises(ValueError, match="no 'same' column"):
        read_csv_pairs(tmp_path / "b.csv", tmp_path)
    (tmp_path / "d.csv").write_text("probe,gallery,id\na.jpg,b.jpg,x\nc.jpg,d.jpg,x\n")
    with pytest.raises(ValueError, match="same name 'x'"):
        read_batch_pairs(tmp_path / "d.csv", tmp_path)
    (tmp_path / "e.csv").write_text("probe,gallery,id\na.jpg,b.jpg,../x\n")
    with pytest.raises(ValueError, match="not a plain file name"):
        read_batch_pairs(tmp_path / "e.csv", tmp_path)


@pytest.mark.parametrize(("args", "message"), [
    (["--pairs", "missing.csv"], "no such pair list: missing.csv"),
    (["--pairs", "LIST", "a.jpg", "b.jpg"], "--pairs takes no PROBE/GALLERY"),
    (["--pairs", "LIST", "--json"], "--json is for one pair"),
    (["--pairs", "LIST", "--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    (["--pairs", "LIST", "--num-cpus", "2"], "--num-cpus applies to --engine ray only"),
    (["--pairs", "LIST", "--method", "minplus", "--generator", "rollout"],
     "--generator does not apply to --method minplus"),
    (["--pairs", "LIST", "--root", "nowhere"], "no such image folder: nowhere"),
    (["--pairs", "LIST", "--root", "."], "none of the 4 image files"),
    (["a.jpg", "b.jpg", "--engine", "ray"], "--engine applies to --pairs LIST only"),
])
def test_bad_input_is_one_line_before_any_model_pass(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        args: list[str], message: str) -> None:
    import xfr.api

    (tmp_path / "LIST").write_text("probe,gallery\nx/a.jpg,x/b.jpg\ny/a.jpg,y/b.jpg\n")
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "b.jpg").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(xfr.api, "load_verifier", _no_model)
    assert cli.main(["explain", *args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("xfr: error: ") and message in err[-1], err
    assert not (tmp_path / "out" / "summary.csv").exists()


def _no_model(*args: object, **kwargs: object) -> None:
    raise AssertionError("a model was loaded before the input was checked")


def test_engine_ray_without_ray_is_one_line(tmp_path: Path) -> None:
    """Without Ray installed (its import blocked), ``--engine ray`` is one line, exit 2."""
    (tmp_path / "list.csv").write_text("probe,gallery\na.jpg,b.jpg\n")
    code = ("import sys; sys.modules['ray'] = None; from xfr.cli import main; "
            f"sys.exit(main(['explain', '--pairs', {str(tmp_path / 'list.csv')!r}, "
            "'--engine', 'ray']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "xfr: error: --engine ray needs Ray, which is not installed: pip install 'xfr[ray]' "
        "(or pip install 'ray[data]')"]


# -- a real run ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_many_pairs_summary_failures_and_resume(
        tmp_path: Path, lfw_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import xfr

    listing = write_list(tmp_path, lfw_root, 2, bad=True)
    out = tmp_path / "out"
    # batches of 3: the pair without a face shares its batch with two good pairs
    code = cli.main(["explain", "--pairs", str(listing), "--out", str(out),
                     "--batch-size", "3"])
    std = capsys.readouterr()
    assert code == 1
    assert std.out.strip().splitlines()[-1] == f"2 of 4 pairs failed, see {out / 'summary.csv'}"
    assert "4 to explain (relevance) on local" in std.err
    assert "4/4 pairs done (2 failed)" in std.err  # plain lines off a terminal
    rows = summary(out)
    assert list(rows[0]) == list(SUMMARY_COLUMNS)
    assert [(r["stem"], r["status"]) for r in rows] == [
        ("lfw0", "ok"), ("noface", "failed"), ("lfw1", "ok"), ("broken", "failed")]
    assert rows[1]["error"].startswith("NoFaceError: no face found in")
    assert rows[3]["error"].startswith("ImageError: not an image")
    assert rows[3]["label"] == "" and rows[3]["correct"] == ""
    for r in rows:
        if r["status"] == "ok":
            d, t = float(r["distance"]), float(r["threshold"])
            assert r["decision"] == ("positive" if d < t else "negative")
            assert float(r["margin"]) == abs(d - t)
            assert r["correct"] == str((r["decision"] == "positive")
                                       == (r["label"] == "same")).lower()
            assert r["strategy"] == "" and float(r["seconds"]) > 0  # relevance: no mask strategy
            for suffix in (".png", ".json", ".npz"):
                assert (out / f"{r['stem']}{suffix}").is_file()
    assert not (out / "noface.json").exists()

    # the same result as the single-pair command, and its JSON says how it was made
    first = rows[0]
    alone = xfr.explain(first["probe"], first["gallery"])
    saved = xfr.Explanation.load(out / "lfw0.json")
    assert np.array_equal(saved.heatmaps, alone.heatmaps)
    assert saved.distance == alone.distance and saved.strategy == alone.strategy
    assert saved.notes["inputs"] == {"probe": first["probe"], "gallery": first["gallery"]}
    assert saved.notes["faces"] == alone.notes["faces"]
    assert saved.notes["model"] == alone.notes["model"]
    batch = saved.notes["batch"]
    assert batch["model"] == alone.notes["model"]["sha256"]

    # resume: the two good pairs are reused (not rewritten), the two failures tried again
    stamps = {f.name: f.stat().st_mtime_ns for f in out.iterdir() if f.stem.startswith("lfw")}
    result = run_batch(BatchSettings(listing, out, pairs_per_batch=3, quiet=True))
    assert (result.reused, result.computed, result.failed) == (2, 2, 2)
    assert stamps == {f.name: f.stat().st_mtime_ns for f in out.iterdir()
                      if f.stem.startswith("lfw")}
    again = summary(out)
    assert again[0] == rows[0] and again[2] == rows[2]  # reused: their recorded seconds
    assert [r["error"] for r in again] == [r["error"] for r in rows]

    # another configuration or another input is not "done"
    pair = read_batch_pairs(listing)[0]
    same = config_hash(configuration(DEFAULT_METHOD, {}, "yunet"))
    other = config_hash(configuration(DEFAULT_METHOD, {"generator": "rollout"}, "yunet"))
    assert batch["configuration"] == same != other
    assert done_before(out, pair, batch["model"], same, True) is not None
    assert done_before(out, pair, batch["model"], other, True) is None
    assert done_before(out, pair, "another-model", same, True) is None
    (out / "lfw0.png").unlink()
    assert done_before(out, pair, batch["model"], same, True) is None
    assert done_before(out, pair, batch["model"], same, False) is not None
    doc = json.loads((out / "lfw1.json").read_text())
    assert doc["notes"]["inputs"]["probe"] != pair.probe
    assert done_before(out, pair.__class__(pair.index, "lfw1", pair.probe, pair.gallery),
                       batch["model"], same, False) is None
