"""The saved explanation (issue 16; docs/explanation-format.md): a small JSON with metadata,
scores and decision, every array in one ``.npz`` beside it, ``Explanation.load`` exact; every
key documented. Real LFW photos, the bundled model."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xfr
from xfr.api import default_model_path, model_digest
from xfr.explanation import Explanation

DOC = Path(__file__).resolve().parents[1] / "docs" / "explanation-format.md"


@pytest.fixture(scope="module")
def explanations(lfw_root: Path) -> list[tuple[Any, ...]]:
    from xfr.data.lfw import image_folder

    folder = image_folder(lfw_root)
    a = folder / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg"
    b = folder / "Aaron_Peirsol" / "Aaron_Peirsol_0002.jpg"
    c = folder / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg"
    paper = xfr.explain_pairs([(str(a), str(b)), (str(a), str(c))], method="paper")
    baseline = xfr.explain(str(a), str(b), method="minplus", step=56, iterations=1)
    return [(paper[0], a, b), (paper[1], a, c), (baseline, a, b)]


def test_save_writes_a_small_json_and_load_reads_everything_back(
    explanations: list[tuple[Any, ...]], tmp_path: Path
) -> None:
    for i, (e, probe, gallery) in enumerate(explanations):
        png, js = e.save(tmp_path, stem=f"pair_{i}")  # many explanations, one folder
        assert png.is_file() and js.with_suffix(".npz").is_file()
        assert js.stat().st_size < 20_000  # was 1.8 MB of number lists
        back = Explanation.load(js)
        assert back.to_dict() == e.to_dict()  # every value and dtype
        assert Explanation.load(tmp_path / f"pair_{i}").to_dict() == e.to_dict()
        doc = json.loads(js.read_text())
        assert doc["xfr_version"] == xfr.__version__ and doc["arrays"] == f"pair_{i}.npz"
        assert doc["notes"]["inputs"] == {"probe": str(probe), "gallery": str(gallery)}
        assert doc["notes"]["model"] == {"verifier": "default", "plugin": "face-vit",
                                         "sha256": model_digest(default_model_path())}
    assert len(list(tmp_path.glob("pair_*.json"))) == 3


def test_a_moved_folder_still_loads_and_old_full_json_is_read(
    explanations: list[tuple[Any, ...]], tmp_path: Path
) -> None:
    e = explanations[1][0]
    e.save(tmp_path / "a", stem="x")
    (tmp_path / "a").rename(tmp_path / "b")
    assert Explanation.load(tmp_path / "b" / "x.json").to_dict() == e.to_dict()
    old = tmp_path / "old.json"
    old.write_text(e.to_json())  # format 1: arrays inside the JSON
    assert Explanation.load(old).to_dict() == e.to_dict()
    (tmp_path / "b" / "x.npz").unlink()
    with pytest.raises(FileNotFoundError, match=r"its arrays file is missing: .*x\.npz"):
        Explanation.load(tmp_path / "b" / "x.json")


def test_every_key_written_is_documented(
    explanations: list[tuple[Any, ...]], tmp_path: Path
) -> None:
    cells = re.findall(r"^\| (`[^|]+`) \|", DOC.read_text(), flags=re.MULTILINE)
    documented = {name for cell in cells for name in re.findall(r"`([^`]+)`", cell)}

    def covered(key: str) -> bool:
        return key in documented or any(
            d.endswith("<i>") and key.startswith(d[:-3]) for d in documented)

    for i, (e, _, _) in enumerate(explanations):
        _, js = e.save(tmp_path, stem=f"e{i}")
        doc = json.loads(js.read_text())
        keys = set(doc) | {f"candidates[].{k}" for c in doc["candidates"] for k in c}
        keys |= {k for k in doc["notes"] if not isinstance(doc["notes"][k], dict)}
        keys |= {f"{k}.{s}" for k, v in doc["notes"].items() if isinstance(v, dict)
                 and k in ("inputs", "model") for s in v}
        keys |= {k for k, v in doc["notes"].items() if isinstance(v, dict)
                 and k not in ("inputs", "model")}
        with np.load(js.with_suffix(".npz")) as npz:
            keys |= set(npz.files)
        assert sorted(k for k in keys if not covered(k)) == []
