"""``XFR_DISABLE_PLUGINS=a,b`` and ``Registry(disabled=...)`` block plugins: not imported,
nothing provided."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from plugin_dists import UNRELATED_BUILTINS, DistFactory, dist_factory, mask_plugin_source

import xfr
from xfr.registry import Registry


@pytest.fixture
def dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DistFactory]:
    yield from dist_factory(tmp_path, monkeypatch)


def _two_plugins(dists: DistFactory) -> None:
    dists.make_dist("xfr-broken", {"broken_one": "broken"}, {"broken": "raise ImportError('x')"})
    dists.make_dist("xfr-extra", {"extra": "extra"}, {"extra": mask_plugin_source("extra")})


def test_the_environment_variable_blocks_plugins_before_they_are_imported(
    dists: DistFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    _two_plugins(dists)
    monkeypatch.setenv("XFR_DISABLE_PLUGINS", " broken_one, extra ,,masks")
    reg = Registry(disabled=UNRELATED_BUILTINS)
    assert reg.broken() == []  # the broken plugin was never imported
    assert dists.module("broken") not in sys.modules
    assert dists.module("extra") not in sys.modules
    assert reg.names("mask") == []  # the built-in 'masks' plugin is blocked too
    assert "metric" in reg.names("selector")
    assert {"broken_one", "extra", "masks"} <= reg.disabled


def test_the_api_argument_blocks_plugins(dists: DistFactory) -> None:
    _two_plugins(dists)
    reg = Registry(disabled=[*UNRELATED_BUILTINS, "broken_one"])
    assert reg.broken() == []
    assert "extra" in reg.names("mask")
    assert [name for name, _, _ in reg.plugins()].count("broken_one") == 0


def test_without_blocking_the_same_plugins_load(dists: DistFactory) -> None:
    _two_plugins(dists)
    reg = Registry(disabled=UNRELATED_BUILTINS)
    assert [b.name for b in reg.broken()] == ["broken_one"]
    assert {"extra", "oim"} <= set(reg.names("mask"))


def test_the_argument_and_the_environment_apply_together(
    dists: DistFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    _two_plugins(dists)
    monkeypatch.setenv("XFR_DISABLE_PLUGINS", "extra")
    reg = Registry(disabled=[*UNRELATED_BUILTINS, "broken_one"])
    assert reg.broken() == []
    assert "extra" not in reg.names("mask")
    assert {"extra", "broken_one"} <= reg.disabled


def test_registering_a_disabled_name_in_process_registers_nothing() -> None:
    class Plugin:
        @xfr.hookimpl
        def xfr_mask_strategies(self) -> dict[str, type]:
            return {"in-process": object}

    reg = Registry(disabled=["mine"], load_entry_points=False)
    assert reg.register(Plugin(), name="mine") is None
    assert reg.names("mask") == []


def test_a_single_string_is_refused_as_the_disabled_list() -> None:
    with pytest.raises(TypeError, match="iterable of plugin names"):
        Registry(disabled="masks")
