"""Pair lists for the ``xfr explain --pairs`` tests: real LFW pairs (fold 10, genuine and
impostor in turn) plus, where asked, a photo without a face and a file that is no image."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np


def lfw_pairs(lfw_root: Path, n: int) -> list[tuple[str, str, bool]]:
    """``n`` pairs of LFW fold 10 as (probe, gallery, same), genuine and impostor in turn."""
    from xfr.data.lfw import read_pairs

    fold = [p for p in read_pairs(lfw_root / "pairs.txt") if p.fold == 10]
    pos = [p for p in fold if p.same]
    neg = [p for p in fold if not p.same]
    chosen = [x for pair in zip(pos, neg, strict=False) for x in pair][:n]
    return [(str(p.probe), str(p.gallery), p.same) for p in chosen]


def write_list(folder: Path, lfw_root: Path, n: int, bad: bool = False) -> Path:
    """``folder/list.csv`` (header ``probe,gallery,same,id``) with ``n`` LFW pairs; with
    ``bad`` also a pair whose gallery has no face (second) and one whose probe is no image
    (last)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rows = [(p, g, "1" if s else "0", f"lfw{i}") for i, (p, g, s) in
            enumerate(lfw_pairs(lfw_root, n))]
    if bad:
        blank = folder / "blank.jpg"
        Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(blank)
        broken = folder / "broken.jpg"
        broken.write_text("not an image")
        rows.insert(1, (rows[0][0], str(blank), "0", "noface"))
        rows.append((str(broken), rows[0][1], "", "broken"))
    path = folder / "list.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["probe", "gallery", "same", "id"])
        w.writerows(rows)
    return path


def summary(out: Path) -> list[dict[str, str]]:
    """``out/summary.csv`` as dicts."""
    with open(out / "summary.csv", newline="") as f:
        return list(csv.DictReader(f))


def same_results(a: Path, b: Path) -> None:
    """Two output folders hold the same results: the summaries (timing apart), every array
    bit for bit, and the JSONs (timing and the arrays' absolute path apart)."""
    ra, rb = summary(a), summary(b)
    for r in ra + rb:
        r.pop("seconds")
    assert ra == rb
    for r in ra:
        if r["status"] != "ok":
            assert not (a / f"{r['stem']}.npz").exists()
            continue
        with np.load(a / f"{r['stem']}.npz") as x, np.load(b / f"{r['stem']}.npz") as y:
            assert sorted(x.files) == sorted(y.files)
            for k in x.files:
                assert np.array_equal(x[k], y[k]), (r["stem"], k)
        ja, jb = (_untimed(json.loads((d / f"{r['stem']}.json").read_text())) for d in (a, b))
        assert ja == jb


def _untimed(doc: dict) -> dict:
    doc.pop("arrays_path", None)
    notes = doc["notes"]
    notes.pop("seconds_per_pair", None)
    notes["batch"].pop("seconds", None)
    return doc
