"""An application can build its own registry and register plugin objects in process, without
touching the process-wide one."""

from __future__ import annotations

import types

import pytest

import xfr
from xfr import registry
from xfr.errors import PluginError, UnknownNameError, UserError
from xfr.registry import Registry


class Blur:
    name = "blur"
    decisions = frozenset({"positive"})

    def __init__(self, radius: float = 1.0) -> None:
        self.radius = radius


class BlurPlugin:
    @xfr.hookimpl
    def xfr_mask_strategies(self) -> dict[str, type]:
        return {"blur": Blur}


def _module_plugin() -> types.ModuleType:
    module = types.ModuleType("app_selectors")

    class Always:
        name = "always"

        def __init__(self, argument: str | None = None) -> None:
            self.argument = argument

    @xfr.hookimpl
    def xfr_selectors() -> dict[str, type]:
        return {"always": Always}

    module.xfr_selectors = xfr_selectors  # type: ignore[attr-defined]
    return module


def test_a_registry_without_entry_points_knows_only_what_is_registered() -> None:
    reg = Registry(load_entry_points=False)
    assert all(reg.names(kind) == [] for kind in registry.KINDS)
    name = reg.register(BlurPlugin(), name="app-blur", package="my-app", version="3.1")
    assert name == "app-blur"
    assert reg.register(_module_plugin()) is not None
    assert reg.names("mask") == ["blur"]
    assert reg.names("selector") == ["always"]
    assert reg.create("mask", "blur", radius=2.5).radius == 2.5
    assert reg.create("selector", "always:x").argument == "x"
    [p] = reg.providers("mask")
    assert (p.plugin, p.package, p.version) == ("app-blur", "my-app", "3.1")
    assert reg.broken() == []


def test_an_isolated_registry_does_not_leak_into_the_default_one() -> None:
    reg = Registry(load_entry_points=False)
    reg.register(BlurPlugin())
    assert "blur" not in registry.names("mask")
    assert "oim" not in reg.names("mask")
    other = Registry(load_entry_points=False)
    assert other.names("mask") == []


def test_an_isolated_registry_with_entry_points_adds_to_the_builtins() -> None:
    reg = Registry(disabled=["verifiers", "attention", "explainers"])
    reg.register(BlurPlugin(), name="app")
    assert {"blur", "oim", "um", "nium"} <= set(reg.names("mask"))


def test_registering_the_same_object_or_name_twice_is_refused() -> None:
    reg = Registry(load_entry_points=False)
    plugin = BlurPlugin()
    reg.register(plugin, name="p")
    with pytest.raises(PluginError, match="already registered"):
        reg.register(plugin, name="q")
    with pytest.raises(PluginError, match="already registered"):
        reg.register(BlurPlugin(), name="p")
    assert isinstance(PluginError("x"), UserError)


def test_registering_a_plugin_with_an_unknown_hook_fails_at_once() -> None:
    class Typo:
        @xfr.hookimpl
        def xfr_mask_strategie(self) -> dict[str, type]:
            return {"typo": Blur}

    reg = Registry(load_entry_points=False)
    with pytest.raises(PluginError, match="unknown hook xfr_mask_strategie"):
        reg.register(Typo(), name="typo")
    assert reg.names("mask") == []
    reg.register(BlurPlugin(), name="typo")  # the name is free again


def test_registering_a_plugin_whose_hook_fails_fails_at_once() -> None:
    class Failing:
        @xfr.hookimpl
        def xfr_mask_strategies(self) -> dict[str, type]:
            raise RuntimeError("cannot list")

    reg = Registry(load_entry_points=False)
    reg.register(BlurPlugin(), name="blur")
    with pytest.raises(PluginError, match="plugin 'failing': xfr_mask_strategies raised Runtime"):
        reg.register(Failing(), name="failing")
    assert reg.names("mask") == ["blur"]
    assert reg.broken() == []


def test_unregister_removes_the_names() -> None:
    reg = Registry(load_entry_points=False)
    reg.register(BlurPlugin(), name="blur")
    reg.unregister("blur")
    assert reg.names("mask") == []
    with pytest.raises(UnknownNameError, match="no plugin 'blur'"):
        reg.unregister("blur")
