"""A real third-party plugin: ``examples/xfr-plugin-example`` is pip-installed into this
environment, found through its ``xfr`` entry point (listed by ``xfr plugins``, chosen by the
selectors by name), then uninstalled and gone. Each check runs in a fresh interpreter, since
entry points are read once per process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "xfr-plugin-example"
DIST = "xfr-plugin-example"

#: Subprocesses run from here, so that ``-m``/``-c`` import the installed xfr, not the checkout.
NEUTRAL_CWD = Path(__file__).resolve().parent
# Keep the subprocesses about the plugin machinery (the other built-ins import torch).
ENV = dict(os.environ, XFR_DISABLE_PLUGINS="verifiers,attention,explainers")

CHECK = r"""
import json
import numpy as np
from xfr import registry
from xfr.explanation import Candidate
from xfr.interfaces.mask_strategy import MaskStrategy

out = {"masks": registry.names("mask")}
try:
    mask = registry.create("mask", "probe-only")
except KeyError as exc:
    out["error"] = str(exc)
    print(json.dumps(out))
    raise SystemExit(0)

[p] = [p for p in registry.providers("mask") if p.name == "probe-only"]
out["provider"] = [p.plugin, p.package, p.version]
out["is_mask_strategy"] = isinstance(mask, MaskStrategy)

b1 = np.zeros((8, 8), bool); b1[2:4, 2:6] = True          # probe: 8 pixels
b2 = np.zeros((8, 8), bool); b2[3:5, 2:6] = True          # gallery: 8 pixels, 4 shared
a1 = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
removed = mask.combine(b1, b2)
out["ra"] = float(removed.mean())
out["heat_matches"] = bool(np.array_equal(mask.heatmap(a1, a1, b1, b2), np.where(b1, a1, 0)))

def candidates():
    # d = 0.5. probe-only: RA = 8/64; OIM: a given 4/64 mask with a smaller distance gain.
    return [
        Candidate("oim", b1 & b2, 4 / 64, {"pg": 0.55, "pp": 0.55}),
        Candidate("probe-only", removed, out["ra"], {"pg": 1.5, "pp": 1.0}),
    ]

metric = registry.create("selector", "metric").select("positive", 0.5, candidates())
fixed = registry.create("selector", "fixed:probe-only").select("negative", 1.5, [
    Candidate("oim", b1 & b2, 4 / 64, {"npg": 0.1}),
    Candidate("probe-only", removed, out["ra"], {"npg": 1.4}),
])
out["metric"] = [metric.strategy, metric.scores]
out["fixed"] = fixed.strategy
print(json.dumps(out))
"""


def run(*args: str, env: dict[str, str] = ENV) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=NEUTRAL_CWD,
    )


def installed() -> bool:
    return run("-m", "pip", "show", "-q", DIST).returncode == 0


@pytest.fixture
def example_installed(tmp_path: Path) -> Iterator[None]:
    if installed():
        pytest.fail(f"{DIST} is already installed; uninstall it before running this test")
    source = shutil.copytree(EXAMPLE, tmp_path / "xfr-plugin-example")  # keep the repo clean
    pip = run(
        "-m",
        "pip",
        "install",
        "--no-build-isolation",
        "--no-deps",
        "--no-index",
        "-q",
        str(source),
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr
    try:
        yield
    finally:
        if installed():
            run("-m", "pip", "uninstall", "-y", "-q", DIST)


@pytest.mark.slow
def test_installed_plugin_is_listed_chosen_by_name_and_gone_after_uninstall(
    example_installed: None,
) -> None:
    listing = run("-m", "xfr", "plugins", "--kind", "mask")
    assert listing.returncode == 0, listing.stderr
    rows = [line.split() for line in listing.stdout.splitlines()]
    assert ["mask", "probe-only", DIST, "0.1.0", "probe_only"] in rows
    assert ["mask", "oim", "xfr"] in [row[:3] for row in rows]

    check = run("-c", CHECK)
    assert check.returncode == 0, check.stderr
    info = json.loads(check.stdout)
    assert info["provider"] == ["probe_only", DIST, "0.1.0"]
    assert info["is_mask_strategy"] and info["heat_matches"]
    assert info["ra"] == 8 / 64
    # SM+ (eq. 1): probe-only ((1.5-.5)/.5)/(2*.125) + ((1-.5)/.5)/(2*.125) = 8 + 4 = 12;
    # OIM ((.55-.5)/.5)/(2*.0625) * 2 = 1.6.
    strategy, scores = info["metric"]
    assert strategy == "probe-only"
    assert scores == {"oim": pytest.approx(1.6), "probe-only": pytest.approx(12.0)}
    assert info["fixed"] == "probe-only"  # though OIM has the larger SM- here

    blocked_env = dict(ENV, XFR_DISABLE_PLUGINS=ENV["XFR_DISABLE_PLUGINS"] + ",probe_only")
    blocked = json.loads(run("-c", CHECK, env=blocked_env).stdout)
    assert "probe-only" not in blocked["masks"]

    uninstall = run("-m", "pip", "uninstall", "-y", "-q", DIST)
    assert uninstall.returncode == 0, uninstall.stderr
    after = run("-m", "xfr", "plugins", "--kind", "mask")
    assert after.returncode == 0
    assert "probe-only" not in after.stdout and DIST not in after.stdout
    gone = json.loads(run("-c", CHECK).stdout)
    assert "probe-only" not in gone["masks"]
    assert "unknown mask 'probe-only'" in gone["error"] and "oim" in gone["error"]
