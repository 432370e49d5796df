"""Two plugins providing the same name: listed, but using that name fails naming both packages
(the other names stay usable). Real distributions, real entry points."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from plugin_dists import UNRELATED_BUILTINS, DistFactory, dist_factory, mask_plugin_source

from xfr.errors import DuplicateNameError
from xfr.registry import Registry


@pytest.fixture
def dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DistFactory]:
    yield from dist_factory(tmp_path, monkeypatch)


def test_a_name_with_two_providers_fails_on_use_naming_both_packages(dists: DistFactory) -> None:
    dists.make_dist("xfr-twin-a", {"twin_a": "a"}, {"a": mask_plugin_source("twin")}, "1.0")
    dists.make_dist("xfr-twin-b", {"twin_b": "b"}, {"b": mask_plugin_source("twin")}, "2.0")
    reg = Registry(disabled=UNRELATED_BUILTINS)
    assert "twin" in reg.names("mask")
    assert sorted(p.package for p in reg.providers("mask") if p.name == "twin") == [
        "xfr-twin-a",
        "xfr-twin-b",
    ]
    with pytest.raises(DuplicateNameError) as info:
        reg.get("mask", "twin")
    message = str(info.value)
    assert isinstance(info.value, LookupError)
    assert "'xfr-twin-a' 1.0" in message and "'xfr-twin-b' 2.0" in message
    assert "XFR_DISABLE_PLUGINS=" in message
    with pytest.raises(DuplicateNameError):
        reg.create("mask", "twin")
    # Only that name is affected.
    assert reg.create("mask", "oim").name == "oim"
    [(kind, name, providers)] = reg.conflicts()
    assert (kind, name, len(providers)) == ("mask", "twin", 2)
    assert reg.broken() == []


def test_disabling_one_provider_resolves_the_conflict(dists: DistFactory) -> None:
    dists.make_dist("xfr-twin-a", {"twin_a": "a"}, {"a": mask_plugin_source("twin")})
    dists.make_dist("xfr-twin-b", {"twin_b": "b"}, {"b": mask_plugin_source("twin")})
    reg = Registry(disabled=[*UNRELATED_BUILTINS, "twin_b"])
    assert reg.get("mask", "twin").__module__ == dists.module("a")
    assert reg.conflicts() == []


def test_a_third_party_name_clashing_with_a_builtin_names_xfr_and_the_other_package(
    dists: DistFactory,
) -> None:
    dists.make_dist("xfr-my-oim", {"my_oim": "mine"}, {"mine": mask_plugin_source("oim")})
    reg = Registry(disabled=UNRELATED_BUILTINS)
    with pytest.raises(
        DuplicateNameError,
        match=r"package 'xfr'.*package 'xfr-my-oim'|"
        r"package 'xfr-my-oim'.*package 'xfr'",
    ):
        reg.get("mask", "oim")
    assert reg.get("mask", "um").__name__ == "UnifiedMask"


def test_the_advice_for_a_clash_with_a_builtin_blocks_the_other_package_not_xfr(
    dists: DistFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 16, item 8: the advice said XFR_DISABLE_PLUGINS=masks, which removes the built-in
    # oim, um and nium too. It must name the other distribution and its plugin.
    dists.make_dist("xfr-my-oim", {"my_oim": "mine"}, {"mine": mask_plugin_source("oim")})
    reg = Registry(disabled=UNRELATED_BUILTINS)
    with pytest.raises(DuplicateNameError) as info:
        reg.get("mask", "oim")
    message = str(info.value)
    assert "XFR_DISABLE_PLUGINS=my_oim (blocks plugin 'my_oim' of package 'xfr-my-oim')" in message
    assert "to keep the one of package 'xfr'" in message
    assert "XFR_DISABLE_PLUGINS=masks" not in message
    # Following the advice keeps every built-in mask and resolves the clash.
    monkeypatch.setenv("XFR_DISABLE_PLUGINS", "my_oim")
    fixed = Registry(disabled=UNRELATED_BUILTINS)
    assert fixed.names("mask") == ["nium", "oim", "um"]
    assert fixed.get("mask", "oim").__name__ == "OnlyIntersectionMask"
    assert fixed.conflicts() == []


def test_the_advice_names_what_else_the_blocked_plugin_would_remove(dists: DistFactory) -> None:
    source = mask_plugin_source("twin").replace(
        "return {'twin': Mask}", "return {'twin': Mask, 'extra': Mask}")
    dists.make_dist("xfr-twin-a", {"twin_a": "a"}, {"a": source})
    dists.make_dist("xfr-twin-b", {"twin_b": "b"}, {"b": mask_plugin_source("twin")})
    reg = Registry(disabled=UNRELATED_BUILTINS)
    with pytest.raises(DuplicateNameError) as info:
        reg.get("mask", "twin")
    message = str(info.value)
    assert "block one of them with XFR_DISABLE_PLUGINS=" in message
    assert "XFR_DISABLE_PLUGINS=twin_b (blocks plugin 'twin_b' of package 'xfr-twin-b')" in message
    assert ("XFR_DISABLE_PLUGINS=twin_a (blocks plugin 'twin_a' of package 'xfr-twin-a'; that "
            "plugin also provides mask 'extra')") in message
