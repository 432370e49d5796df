"""``xfr sanity``: cascading model randomisation (Adebayo et al. 2018) of the paper explainer,
on the real default model and 10 held-out LFW pairs (folds 9-10), one generator."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from xfr.cli import main
from xfr.evaluation.runner import model_fingerprint
from xfr.evaluation.sanity import (
    CONSTANT_RELATIVE_STD,
    CONSTANT_ZERO_STD,
    cascade_steps,
    parameter_groups,
    randomised_verifier,
    redraw_,
    run_sanity,
)

pytestmark = [pytest.mark.lfw, pytest.mark.slow]


@pytest.fixture(scope="module")
def run(lfw_root: Path, default_verifier: Any, tmp_path_factory: pytest.TempPathFactory
        ) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("sanity")
    before = model_fingerprint(default_verifier)
    result = run_sanity(lfw_root / "pairs.txt", lfw_root, out, folds={9, 10}, limit=10,
                        generators=("nograd-lrp",), verifier=default_verifier, seed=0,
                        n_boot=200, progress=False, command="test_sanity")
    return {"out": out, "result": result, "before": before,
            "after": model_fingerprint(default_verifier)}


def _steps(run: dict[str, Any]) -> list[dict[str, Any]]:
    return run["result"]["generators"]["nograd-lrp"]["steps"]


def test_the_files_are_written_and_agree_with_the_result(run: dict[str, Any]) -> None:
    out, result = run["out"], run["result"]
    doc = json.loads((out / "sanity.json").read_text())
    assert doc == json.loads(json.dumps(result))
    assert doc["pairs"]["explained"] == 10 and doc["pairs"]["skipped"] == []
    assert {p["fold"] for p in doc["pairs"]["list"]} <= {9, 10}
    assert doc["model"]["fingerprint"] == run["before"]
    depth = doc["model"]["depth"]
    steps = _steps(run)
    assert [s["step"] for s in steps] == list(range(depth + 2))
    assert steps[-1]["groups"][-1] == "stem" and "stem" not in steps[-2]["groups"]
    for s in steps:
        for kind in ("raw", "final"):
            per_pair = np.array(s[kind]["per_pair"]["spearman"], dtype=float)
            assert len(per_pair) == 10
            ci = s[kind]["spearman"]
            assert ci["estimate"] == pytest.approx(np.nanmean(per_pair))
            assert ci["n"] + ci["missing"] == 10
            assert ci["low"] <= ci["estimate"] <= ci["high"]
        assert s["final"]["no_heatmap"] == s["final"]["spearman"]["missing"]

    md = (out / "sanity.md").read_text()
    for s in steps:
        assert f"| {s['step']} | {s['random']} | " in md
    chance = doc["generators"]["nograd-lrp"]["chance"]
    assert f"| chance | two different pairs, trained model | " \
           f"{chance['raw']['spearman']['estimate']:.3f}" in md
    step = doc["generators"]["nograd-lrp"]["below_chance"]["final"]
    if step is None:
        assert "final heatmap's Spearman similarity to the trained model's never" in md
    else:
        assert f"drops below the chance level ({chance['final']['spearman']['estimate']:.3f})" \
               f" at step {step} " in md
        assert steps[step]["final"]["spearman"]["estimate"] < \
            chance["final"]["spearman"]["estimate"]

    from PIL import Image

    with Image.open(out / "sanity.png") as im:
        assert im.format == "PNG" and im.width > 300 and im.height > 200
    command = (out / "command.txt").read_text()
    assert command.startswith("test_sanity\n") and run["before"] in command


def test_step_zero_is_the_reference_itself(run: dict[str, Any]) -> None:
    zero = _steps(run)[0]
    assert zero["groups"] == [] and zero["decisions_changed"] == 0
    for kind in ("raw", "final"):
        for metric in ("spearman", "ssim"):
            assert zero[kind][metric]["estimate"] == 1.0
            assert all(v == 1.0 for v in zero[kind]["per_pair"][metric] if v is not None)


def test_randomising_everything_destroys_the_raw_maps(run: dict[str, Any]) -> None:
    steps = _steps(run)
    last = steps[-1]["raw"]["spearman"]
    # far below step 0 (1.0) and below what two unrelated pairs share under the trained model
    assert last["high"] < 0.6
    chance = run["result"]["generators"]["nograd-lrp"]["chance"]["raw"]["spearman"]
    assert last["estimate"] < chance["estimate"]
    # a random model verifies no better than chance would (5 genuine + 5 impostor pairs)
    assert steps[0]["accuracy"] >= 0.8 and steps[-1]["accuracy"] <= 0.7


def test_the_run_leaves_the_verifier_untouched(run: dict[str, Any]) -> None:
    assert run["after"] == run["before"]


def test_the_cascade_redraws_exactly_its_groups_and_nothing_else(default_verifier: Any) -> None:
    original = {k: v.clone() for k, v in default_verifier.model.state_dict().items()}
    groups = parameter_groups(default_verifier)
    depth = len(default_verifier.backbone.blocks)
    assert list(groups) == ["top", *(f"block {i}" for i in range(depth, 0, -1)), "stem"]
    assert "backbone.norm.weight" in groups["top"]
    assert {"backbone.cls_token", "backbone.pos_embed"} <= set(groups["stem"])
    assert all(n.startswith(f"backbone.blocks.{depth - 1}.") for n in groups[f"block {depth}"])
    everything = [n for names in groups.values() for n in names]
    assert sorted(everything) == sorted(n for n, _ in default_verifier.model.named_parameters())

    steps = cascade_steps(default_verifier)
    previous: dict[str, torch.Tensor] = {}
    for step in (steps[1], steps[depth // 2], steps[-1]):
        clone = randomised_verifier(default_verifier, step, seed=0)
        params = {n: p.detach() for n, p in clone.model.named_parameters()}
        random = {n for g in step.groups for n in groups[g]}
        for name, p in params.items():
            if name in random:
                assert not torch.equal(p, original[name]), name
                if p.numel() >= 1000:  # the draw keeps the tensor's own mean and spread
                    assert float(p.std()) == pytest.approx(float(original[name].std()), rel=0.1)
                    assert abs(float(p.mean() - original[name].mean())) < \
                        0.1 * float(original[name].std())
                if name in previous:  # cumulative: the same draw at every later step
                    assert torch.equal(p, previous[name]), name
                previous[name] = p.detach().clone()
            else:
                assert torch.equal(p, original[name]), name
        for name, b in clone.model.named_buffers():
            assert torch.equal(b, original[name]), name  # BatchNorm statistics are kept
    # the original verifier is untouched
    for k, v in default_verifier.model.state_dict().items():
        assert torch.equal(v, original[k]), k
    again = randomised_verifier(default_verifier, steps[1], seed=0)
    other = randomised_verifier(default_verifier, steps[1], seed=1)
    name = groups["top"][0]
    assert torch.equal(dict(again.model.named_parameters())[name], previous[name])
    assert not torch.equal(dict(other.model.named_parameters())[name], previous[name])


def test_constant_tensors_are_redrawn_around_their_value() -> None:
    gain = redraw_(torch.ones(20000), seed=3)
    assert float(gain.mean()) == pytest.approx(1.0, abs=0.01)
    assert float(gain.std()) == pytest.approx(CONSTANT_RELATIVE_STD, rel=0.05)
    bias = redraw_(torch.zeros(20000), seed=3)
    assert float(bias.std()) == pytest.approx(CONSTANT_ZERO_STD, rel=0.05)
    assert math.isfinite(float(redraw_(torch.full((1,), 2.0), seed=0)[0]))


def test_bad_options_fail_in_one_line_before_the_model_loads(
        lfw_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    # the verifier folder does not exist either: the generator must be reported first,
    # because options are checked before any model is loaded
    code = main(["sanity", "--pairs", str(lfw_root / "pairs.txt"), "--root", str(lfw_root),
                 "--generators", "nograd-lrp,no-such-generator",
                 "--verifier", str(tmp_path / "no-model"), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("xfr: error: ")
    assert "no-such-generator" in err and "no-model" not in err
    assert not out.exists()
