"""Where a verifier comes from (issue 16): ``face-transformer:/path/Backbone_VIT.pth`` in the API
and the CLI (README, "The bundled model"), thresholds that cannot decide anything, and model
folders or weights files that cannot be loaded, each refused with one line naming the file."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from xfr_plugins.verifiers.face_transformer_checkpoint import _ATTN, _MLP, _TOP
from xfr_plugins.verifiers.face_vit import FaceViTConfig, FaceViTModel, FaceViTVerifier

import xfr
from xfr import cli
from xfr.api import default_model_path
from xfr.errors import ModelError, UserError


def face_transformer_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A small P8S8 model's weights under the Face Transformer's parameter names (the inverse
    of the loader's table, docstring of ``face_transformer_checkpoint``)."""
    torch.manual_seed(seed)
    model = FaceViTModel(FaceViTConfig(patch="p8s8", dim=64, depth=2, heads=1, mlp_dim=96))
    top = {v: k for k, v in _TOP.items()}
    layer = re.compile(r"^backbone\.blocks\.(\d+)\.(.+)$")
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        if key in top:
            out[top[key]] = value
            continue
        m = layer.match(key)
        assert m is not None, key
        for part, table in (("0", _ATTN), ("1", _MLP)):
            inverse = {b: a for a, b in table.items()}
            if m.group(2) in inverse:
                out[f"transformer.layers.{m.group(1)}.{part}.fn.{inverse[m.group(2)]}"] = value
    assert len(out) == len(model.state_dict())
    return out


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory, lfw_root: Path) -> tuple[str, str]:
    """Two aligned 112x112 LFW crops as PNG files (they pass through alignment untouched)."""
    from xfr.align import align
    from xfr.data.lfw import image_folder

    folder = tmp_path_factory.mktemp("crops")
    paths = []
    for i, name in enumerate(("Aaron_Peirsol_0001.jpg", "Aaron_Peirsol_0002.jpg")):
        path = folder / f"crop{i}.png"
        Image.fromarray(align(image_folder(lfw_root) / "Aaron_Peirsol" / name)).save(path)
        paths.append(str(path))
    return paths[0], paths[1]


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "Backbone_VIT.pth"
    torch.save(face_transformer_state(), path)
    return path


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("xfr: warning: ")]
    assert len(lines) == 1 and lines[0].startswith("xfr: error: "), err
    return lines[0]


# --- item 1 -------------------------------------------------------------------------------------
def test_load_verifier_reads_a_face_transformer_checkpoint_by_spec(checkpoint: Path) -> None:
    v = xfr.load_verifier(f"face-transformer:{checkpoint}")  # was: "no xfr model folder"
    assert isinstance(v, FaceViTVerifier)
    assert v.config.dim == 64 and v.config.depth == 2 and v.threshold == 1.0
    assert v.config.provenance["source"] == str(checkpoint)
    assert xfr.load_verifier(f"face-transformer:{checkpoint}") is v  # cached like the others


def test_xfr_explain_runs_on_a_face_transformer_checkpoint(
    checkpoint: Path, crops: tuple[str, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    code = cli.main(["explain", *crops, "--verifier", f"face-transformer:{checkpoint}",
                     "-o", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "decision:" in captured.out and (out / "explanation.png").is_file()
    assert json.loads((out / "explanation.json").read_text())["notes"]["verifier"] == "face-vit"


def test_a_path_that_is_not_a_spec_or_folder_is_still_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no xfr model folder"):
        xfr.load_verifier(str(tmp_path / "nowhere:x"))


# --- model folders ------------------------------------------------------------------------------
def model_folder(tmp_path: Path, edit: Any = None, weights: Any = None) -> Path:
    """A copy of the bundled model; ``edit(doc)`` changes its config.json, ``weights(folder)``
    its weights file."""
    folder = tmp_path / "model"
    shutil.copytree(default_model_path(), folder)
    if edit is not None:
        doc = json.loads((folder / "config.json").read_text())
        edit(doc)
        (folder / "config.json").write_text(json.dumps(doc))
    if weights is not None:
        weights(folder / "model.safetensors")
    return folder


def _set_threshold(value: Any) -> Any:
    def edit(doc: dict[str, Any]) -> None:
        doc["architecture"]["threshold"] = value
    return edit


# --- item 4 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [float("nan"), -1.0, 0.0, 4.0, 10.0, float("inf")])
def test_a_threshold_that_gives_every_pair_the_same_decision_is_refused(
    tmp_path: Path, value: float
) -> None:
    folder = model_folder(tmp_path, _set_threshold(value))
    with pytest.raises(ModelError, match=r"config\.json: threshold must be a number between 0 "
                                         r"and 4 .*every pair would get the same decision"):
        xfr.load_verifier(folder)
    with pytest.raises(ValueError, match="threshold must be"):  # also when built directly
        xfr.registry.create("verifier", "face-vit", dim=32, depth=1, heads=2, mlp_dim=64,
                            threshold=value)


def test_a_usable_threshold_still_loads(tmp_path: Path) -> None:
    assert xfr.load_verifier(model_folder(tmp_path, _set_threshold(0.9))).threshold == 0.9


# --- raw tracebacks: model folders and weights files -------------------------------------------
def _drop_tensor(path: Path) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(path))
    del state["backbone.norm.weight"]
    save_file(state, str(path))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:1000])


def _smaller(doc: dict[str, Any]) -> None:
    doc["architecture"]["mlp_dim"] = 256


FOLDER_CASES = {
    "wrong shapes": (dict(edit=_smaller), r"model\.safetensors does not fit .*config\.json: "
                     r"18 tensor\(s\) of another shape: backbone\.blocks\.0\.mlp\.fc1\.bias "
                     r"\(512,\) \(the architecture needs \(256,\)\)"),
    "missing tensor": (dict(weights=_drop_tensor),
                       r"1 tensor\(s\) missing: backbone\.norm\.weight"),
    "null threshold": (dict(edit=_set_threshold(None)), r"threshold must be a number, got None"),
    "list threshold": (dict(edit=_set_threshold([1.2])),
                       r"threshold must be a number, got \[1\.2\]"),
    "corrupt safetensors": (dict(weights=_truncate),
                            r"model\.safetensors: damaged or not a safetensors file"),
    "bad JSON": (dict(edit=lambda d: None), r"config\.json: not valid JSON \(Expecting"),
}


@pytest.mark.parametrize("case", sorted(FOLDER_CASES))
def test_a_model_folder_that_cannot_load_is_one_line_naming_the_file(
    tmp_path: Path, case: str, crops: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    changes, message = FOLDER_CASES[case]
    folder = model_folder(tmp_path, **changes)
    if case == "bad JSON":
        (folder / "config.json").write_text('{"verifier": "face-vit", "architecture": {,}}')
    with pytest.raises(ModelError, match=message) as info:
        xfr.load_verifier(folder)
    assert isinstance(info.value, ValueError) and str(folder) in str(info.value)
    assert "\n" not in str(info.value)
    assert cli.main(["explain", *crops, "--verifier", str(folder),
                     "-o", str(tmp_path / "out")]) == 2
    assert re.search(message, _one_error_line(capsys))


@pytest.mark.parametrize(("content", "reason"), [
    ("garbage", "not a PyTorch file, or a truncated one"),
    ("truncated", "a damaged or truncated PyTorch zip file"),
    ("objects", "it holds Python objects other than tensors, which xfr does not unpickle"),
])
def test_a_damaged_pth_is_one_line_without_the_weights_only_advice(
    tmp_path: Path, content: str, reason: str, capsys: pytest.CaptureFixture[str],
    crops: tuple[str, str],
) -> None:
    import argparse

    path = tmp_path / "Backbone_VIT.pth"
    if content == "garbage":
        path.write_bytes(b"not a checkpoint at all" * 10)
    elif content == "truncated":
        torch.save(face_transformer_state(), path)
        path.write_bytes(path.read_bytes()[:5000])
    else:  # pickled objects other than tensors: torch suggests weights_only=False
        torch.save({"args": argparse.Namespace(lr=1)}, path)
    with pytest.raises(ModelError, match=r"Backbone_VIT\.pth: damaged or not a PyTorch state "
                                         r"dict") as info:
        xfr.load_verifier(f"face-transformer:{path}")
    assert "weights_only=False" not in str(info.value) and reason in str(info.value)
    assert cli.main(["explain", *crops, "--verifier", f"face-transformer:{path}",
                     "-o", str(tmp_path / "out")]) == 2
    line = _one_error_line(capsys)
    assert "damaged or not a PyTorch state dict" in line and "weights_only=False" not in line
    assert isinstance(info.value, UserError)

