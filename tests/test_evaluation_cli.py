"""``xfr evaluate`` end to end on a tiny LFW-style folder of real LFW photos: outputs, resume
from the results cache, shards."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from xfr.cli import main

PEOPLE = {"Abel_Pacheco": (1, 4), "Akhmed_Zakayev": (1, 3)}
# fold 1: an identical pair (always accepted), a genuine pair, two impostor pairs; fold 2 too
PAIRS = """2\t2
Abel_Pacheco\t1\t1
Akhmed_Zakayev\t1\t3
Abel_Pacheco\t1\tAkhmed_Zakayev\t1
Abel_Pacheco\t4\tAkhmed_Zakayev\t3
Akhmed_Zakayev\t3\t3
Abel_Pacheco\t1\t4
Akhmed_Zakayev\t1\tAbel_Pacheco\t4
Akhmed_Zakayev\t3\tAbel_Pacheco\t1
"""


@pytest.fixture(scope="module")
def tiny(lfw_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 4-photo LFW-style folder, its pairs.txt and a small random face ViT whose threshold
    accepts identical photos only (so the pairs give true positives and true negatives)."""
    import torch

    from xfr import registry

    base = tmp_path_factory.mktemp("tiny_lfw")
    src = lfw_root / "lfw-deepfunneled"
    if not src.is_dir():
        src = lfw_root
    for name, numbers in PEOPLE.items():
        (base / "images" / name).mkdir(parents=True)
        for n in numbers:
            f = f"{name}_{n:04d}.jpg"
            shutil.copy(src / name / f, base / "images" / name / f)
    (base / "pairs.txt").write_text(PAIRS)
    torch.manual_seed(0)
    v = registry.create("verifier", "face-vit", patch="conv", dim=32, depth=1, heads=2,
                        mlp_dim=64)
    v.threshold = 1e-5
    v.save(base / "model")
    return {"base": base, "pairs": base / "pairs.txt", "images": base / "images",
            "model": base / "model", "align": base / "aligned"}


def evaluate(tiny: dict[str, Path], out: Path, *extra: str) -> int:
    return main(["evaluate", "--pairs", str(tiny["pairs"]), "--root", str(tiny["images"]),
                 "--verifier", str(tiny["model"]), "--align-cache", str(tiny["align"]),
                 "--bootstrap", "100", "--no-progress", "--out", str(out), *extra])


def cache_state(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*.json")}


@pytest.mark.slow
def test_evaluate_writes_every_report_file_and_resumes_from_the_cache(tiny, tmp_path):
    out = tmp_path / "out"
    assert evaluate(tiny, out, "--folds", "1", "--limit", "3") == 0
    for name in ("results.json", "table1.md", "table1.csv", "accuracy.md", "deletion.md",
                 "deletion.csv", "command.txt", "deletion_positive.png",
                 "deletion_negative.png", "insertion_positive.png", "insertion_negative.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    r = json.loads((out / "results.json").read_text())
    assert r["pairs"]["evaluated"] == 3 and r["pairs"]["folds"] == [1]
    assert r["accuracy"]["pairs"] == 4  # accuracy on every pair of the folds, not the limit
    assert r["pairs"]["true_positives"] == 1 and r["pairs"]["true_negatives"] == 1
    for g in ("rollout", "vit-lrp", "nograd-lrp"):
        cells = r["table1"]["correct"][g]
        assert cells["positive/oim"]["n"] + cells["positive/oim"]["missing"] == 1
        assert cells["negative/nium"]["n"] + cells["negative/nium"]["missing"] == 1
        for pol in ("positive", "negative"):
            c = r["curves"]["all"]["deletion"][pol][f"attention-{g}"]
            assert c["n"] == 1 and len(c["curve"]) == 11
    pos = r["curves"]["all"]["deletion"]["positive"]["random"]
    assert pos["curve"][0] == 1.0 and pos["curve"][-1] == 0.0  # accepted, then a black probe
    neg = r["curves"]["all"]["deletion"]["negative"]["random"]
    assert neg["curve"][0] == 1.0 and neg["curve"][-1] == 0.0  # two black faces are alike
    command = (out / "command.txt").read_text()
    assert "--limit 3" in command and "seed: 0" in command and r["model"]["fingerprint"] in command
    assert "paper (LFW, ViT-LRP)" in (out / "table1.md").read_text()

    before = cache_state(out / "cache")
    tables = {n: (out / n).read_text() for n in ("table1.csv", "deletion.csv")}
    assert evaluate(tiny, out, "--folds", "1", "--limit", "3") == 0
    assert cache_state(out / "cache") == before  # nothing recomputed
    assert {n: (out / n).read_text() for n in tables} == tables

    # a larger limit reuses the cached pairs and computes only the new one
    assert evaluate(tiny, out, "--folds", "1", "--limit", "4") == 0
    after = cache_state(out / "cache")
    assert all(after[k] == v for k, v in before.items())
    assert len(after) > len(before)


@pytest.mark.slow
def test_shards_share_the_work_and_a_final_run_only_reports(tiny, tmp_path):
    common = ("--methods", "paper,random", "--generators", "rollout")
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    assert evaluate(tiny, whole, *common) == 0
    assert evaluate(tiny, sharded, "--shard", "1/2", *common) == 0
    assert not (sharded / "results.json").exists()
    first = cache_state(sharded / "cache")
    # --report-only reports the half that is done, and says so
    assert evaluate(tiny, sharded, "--report-only", *common) == 0
    assert cache_state(sharded / "cache") == first
    r = json.loads((sharded / "results.json").read_text())
    assert r["coverage"]["paper-rollout"] == {**r["coverage"]["paper-rollout"], "pairs": 8,
                                              "done": 4}
    assert "INCOMPLETE" in (sharded / "command.txt").read_text()
    assert evaluate(tiny, sharded, "--shard", "2/2", *common) == 0
    second = cache_state(sharded / "cache")
    assert len(first) < len(second)
    assert evaluate(tiny, sharded, *common) == 0
    assert cache_state(sharded / "cache") == second
    assert (sharded / "deletion.csv").read_text() == (whole / "deletion.csv").read_text()
    assert (sharded / "table1.csv").read_text() == (whole / "table1.csv").read_text()


def test_bad_arguments_are_one_line_errors(tiny, tmp_path, capsys):
    assert evaluate(tiny, tmp_path / "o", "--shard", "3/2") == 2
    assert "--shard" in capsys.readouterr().err
    assert evaluate(tiny, tmp_path / "o", "--folds", "7") == 2
    assert "fold(s) [7]" in capsys.readouterr().err
    assert evaluate(tiny, tmp_path / "o", "--option", "rise") == 2
    assert "METHOD.KEY=VALUE" in capsys.readouterr().err
    assert evaluate(tiny, tmp_path / "o", "--methods", "random,minplus",
                    "--option", "minplus.rounds=3") == 2
    assert "minplus" in capsys.readouterr().err
    assert main(["evaluate", "--pairs", str(tmp_path / "none.txt"), "--root", str(tmp_path),
                 "--out", str(tmp_path / "o")]) == 2
    assert "no such pair list" in capsys.readouterr().err
