"""``xfr plugins``: every kind, name, package and version; broken plugins with their error;
exit status 0 unless ``--fail-on-broken``. Run as the real command in a subprocess."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from plugin_dists import UNRELATED_BUILTINS, DistFactory, dist_factory, mask_plugin_source

#: Subprocesses run from here, so that ``-m``/``-c`` import the installed xfr, not the checkout.
NEUTRAL_CWD = Path(__file__).resolve().parent


@pytest.fixture
def dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DistFactory]:
    yield from dist_factory(tmp_path, monkeypatch)


def xfr_cli(
    *args: str, site: Path | None = None, disable: tuple[str, ...] = UNRELATED_BUILTINS
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, XFR_DISABLE_PLUGINS=",".join(disable))
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "xfr", *args],
        capture_output=True,
        cwd=NEUTRAL_CWD,
        text=True,
        env=env,
        timeout=120,
    )


def test_lists_every_kind_name_package_and_version() -> None:
    version = importlib.metadata.version("xfr")
    out = xfr_cli("plugins")
    assert out.returncode == 0, out.stderr
    lines = [line.split() for line in out.stdout.splitlines()]
    assert lines[0] == ["KIND", "NAME", "PACKAGE", "VERSION", "PLUGIN"]
    for kind, name, plugin in [
        ("mask", "oim", "masks"),
        ("mask", "um", "masks"),
        ("mask", "nium", "masks"),
        ("selector", "metric", "selectors"),
        ("selector", "fixed", "selectors"),
    ]:
        assert [kind, name, "xfr", version, plugin] in lines
    assert "disabled plugins: attention, explainers, verifiers" in out.stdout


def test_json_output_and_kind_filter() -> None:
    out = xfr_cli("plugins", "--json", "--kind", "selector")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert {(p["kind"], p["name"], p["package"]) for p in data["providers"]} == {
        ("selector", "fixed", "xfr"),
        ("selector", "metric", "xfr"),
    }
    assert data["broken"] == [] and data["conflicts"] == []


def test_broken_plugins_are_listed_with_their_error_and_fail_only_on_request(
    dists: DistFactory,
) -> None:
    dists.make_dist(
        "xfr-broken-example", {"kaput": "kaput"}, {"kaput": "raise ImportError('needs libkaput')"}
    )
    dists.make_dist("xfr-fine", {"fine": "fine"}, {"fine": mask_plugin_source("fine-mask")})
    out = xfr_cli("plugins", site=dists.site)
    assert out.returncode == 0, out.stderr
    assert "broken plugins (1):" in out.stdout
    assert "kaput (package xfr-broken-example): ImportError: needs libkaput" in out.stdout
    assert any(
        line.split()[:3] == ["mask", "fine-mask", "xfr-fine"] for line in out.stdout.splitlines()
    )

    failing = xfr_cli("plugins", "--fail-on-broken", site=dists.site)
    assert failing.returncode == 1
    assert "kaput" in failing.stdout

    debug = xfr_cli("--debug", "plugins", site=dists.site)
    assert "Traceback" in debug.stdout and "needs libkaput" in debug.stdout

    blocked = xfr_cli(
        "plugins", "--fail-on-broken", site=dists.site, disable=(*UNRELATED_BUILTINS, "kaput")
    )
    assert blocked.returncode == 0, blocked.stdout
    assert "broken plugins" not in blocked.stdout


def test_a_name_with_two_providers_is_marked_and_fails_on_request(dists: DistFactory) -> None:
    dists.make_dist("xfr-twin-a", {"twin_a": "a"}, {"a": mask_plugin_source("twin")})
    dists.make_dist("xfr-twin-b", {"twin_b": "b"}, {"b": mask_plugin_source("twin")})
    out = xfr_cli("plugins", "--kind", "mask", site=dists.site)
    assert out.returncode == 0
    assert out.stdout.count("twin (!)") == 2
    assert "(!) mask 'twin' is provided by xfr-twin-" in out.stdout
    assert xfr_cli("plugins", "--fail-on-broken", site=dists.site).returncode == 1
