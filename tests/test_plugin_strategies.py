"""Third-party mask strategies in the paper's explainer (issue 16, item 7; docs/hooks.md,
xfr_mask_strategies): selectable from the CLI (``--selector fixed:NAME``, ``--strategies``),
and their output validated at the boundary, the error naming the plugin. Real installed
distributions (tests/plugin_dists.py), the bundled model, real LFW crops."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from plugin_dists import DistFactory, dist_factory

import xfr
from xfr import cli, registry
from xfr.errors import PluginOutputError

#: A plugin module with four mask strategies: a sound one (the probe's Otsu mask) and three
#: that break the contract (Sec. 3.2-3.3: a mask of the face's shape, a heatmap of it).
STRATEGIES = """
    import numpy as np
    import xfr

    class ProbeMask:
        decisions = frozenset({"positive", "negative"})

        def combine(self, mask_p, mask_g):
            return np.asarray(mask_p, bool).copy()

        def heatmap(self, map_p, map_g, mask_p, mask_g):
            return np.where(mask_p, map_p, 0).astype(np.float32)

    class SmallHeat(ProbeMask):
        def heatmap(self, map_p, map_g, mask_p, mask_g):
            return np.ones((56, 56), np.float32)

    class NanMask(ProbeMask):
        def combine(self, mask_p, mask_g):
            return np.full(np.shape(mask_p), np.nan)

    class NoDecisions:
        def combine(self, mask_p, mask_g):
            return mask_p

        def heatmap(self, map_p, map_g, mask_p, mask_g):
            return map_p

    @xfr.hookimpl
    def xfr_mask_strategies():
        return {"probe-mask": ProbeMask, "small-heat": SmallHeat, "nan-mask": NanMask,
                "no-decisions": NoDecisions}
"""


@pytest.fixture
def dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DistFactory]:
    """The distribution ``xfr-extra-masks`` installed, and a fresh default registry that sees it
    (the previous one is restored afterwards)."""
    for factory in dist_factory(tmp_path, monkeypatch):
        factory.make_dist("xfr-extra-masks", {"extra_masks": "extra"}, {"extra": STRATEGIES},
                          "2.1")
        monkeypatch.setattr(registry, "_default", None)
        yield factory


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory, lfw_root: Path) -> tuple[str, str]:
    from xfr.align import align
    from xfr.data.lfw import image_folder

    folder = tmp_path_factory.mktemp("crops")
    out = []
    for i, name in enumerate(("Aaron_Peirsol_0001.jpg", "Aaron_Peirsol_0002.jpg")):
        path = folder / f"crop{i}.png"
        Image.fromarray(align(image_folder(lfw_root) / "Aaron_Peirsol" / name)).save(path)
        out.append(str(path))
    return out[0], out[1]


def test_fixed_name_selects_a_third_party_strategy_from_the_cli(
    dists: DistFactory, crops: tuple[str, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str], default_verifier: object,
) -> None:
    # Was: "fixed strategy 'probe-mask' is not among the candidates (oim, um)".
    code = cli.main(["explain", *crops, "--method", "paper", "--selector", "fixed:probe-mask",
                     "-o", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "decision: positive" in out
    [line] = [ln for ln in out.splitlines() if "probe-mask" in ln]
    assert "<- chosen" in line and "score" in line
    assert "not among the candidates" not in out


def test_strategies_option_adds_candidates_from_the_cli(
    dists: DistFactory, crops: tuple[str, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str], default_verifier: object,
) -> None:
    code = cli.main(["explain", *crops, "--method", "paper", "--strategies", "oim,probe-mask",
                     "--json",
                     "-o", str(tmp_path)])
    assert code == 0
    import json

    summary = json.loads(capsys.readouterr().out)
    assert list(summary["candidates"]) == ["oim", "probe-mask"]
    assert summary["candidates"]["probe-mask"]["score"] is not None


@pytest.mark.parametrize(("name", "message"), [
    ("small-heat", r"heatmap returned shape \(56, 56\), expected \(112, 112\)"),
    ("nan-mask", r"combine returned NaN or infinite values"),
    ("no-decisions", r"decisions must be a set of 'positive'/'negative', got None"),
])
def test_a_strategy_that_breaks_its_contract_is_named(
    dists: DistFactory, crops: tuple[str, str], name: str, message: str,
    default_verifier: object,
) -> None:
    plugin = rf"mask strategy '{name}' \(package 'xfr-extra-masks' 2\.1, plugin 'extra_masks'\): "
    with pytest.raises(PluginOutputError, match=plugin + message):
        xfr.explain(*crops, method="paper", selector=f"fixed:{name}")


def test_a_broken_strategy_is_one_cli_line(
    dists: DistFactory, crops: tuple[str, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str], default_verifier: object,
) -> None:
    out = tmp_path / "out"
    assert cli.main(["explain", *crops, "--method", "paper", "--selector", "fixed:small-heat",
                     "-o", str(out)]) == 2
    err = "".join(ln for ln in capsys.readouterr().err.splitlines(keepends=True)
                  if not ln.startswith("xfr: warning: "))
    assert err.startswith("xfr: error: mask strategy 'small-heat' (package 'xfr-extra-masks'")
    assert err.count("\n") == 1
    assert not out.exists()  # nothing half-written
