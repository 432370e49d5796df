"""Lookup by kind and name in the process-wide registry, fed by the real ``xfr`` entry points."""

from __future__ import annotations

import importlib.metadata
import inspect

import pytest

import xfr
from xfr import hookspecs, registry
from xfr.errors import UnknownKindError, UnknownNameError


def test_the_builtin_masks_and_selectors_are_found_through_the_xfr_entry_points() -> None:
    eps = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="xfr")}
    assert eps["masks"] == "xfr_plugins.masks"
    assert eps["selectors"] == "xfr_plugins.selectors"
    assert {"oim", "um", "nium"} <= set(registry.names("mask"))
    assert {"metric", "fixed"} <= set(registry.names("selector"))


def test_each_name_is_attributed_to_its_plugin_package_and_version() -> None:
    version = importlib.metadata.version("xfr")
    by_name = {p.name: p for p in registry.providers("mask")}
    for name in ("oim", "um", "nium"):
        p = by_name[name]
        assert (p.kind, p.plugin, p.package, p.version) == ("mask", "masks", "xfr", version)
    sel = {p.name: p for p in registry.providers("selector")}
    assert (sel["metric"].plugin, sel["metric"].package) == ("selectors", "xfr")


def test_providers_without_a_kind_lists_every_kind_in_order() -> None:
    kinds = [p.kind for p in registry.providers()]
    assert kinds == sorted(kinds, key=registry.KINDS.index)
    assert {"mask", "selector"} <= set(kinds)


def test_names_are_sorted() -> None:
    names = registry.names("mask")
    assert names == sorted(names)


def test_get_returns_the_factory_the_plugin_registered() -> None:
    from xfr_plugins.masks import OnlyIntersectionMask
    from xfr_plugins.selectors import FixedSelector, MetricSelector

    assert registry.get("mask", "oim") is OnlyIntersectionMask
    assert registry.get("selector", "metric") is MetricSelector
    assert registry.get("selector", "fixed") is FixedSelector


def test_create_calls_the_factory_with_the_spec_argument_and_options() -> None:
    assert registry.create("selector", "fixed:um").strategy == "um"
    assert registry.create("selector", "fixed").strategy == "oim"
    assert registry.create("selector", "metric", d_floor=1e-6).d_floor == 1e-6
    assert registry.create("mask", "nium").name == "nium"


def test_create_names_what_the_factory_does_not_accept() -> None:
    with pytest.raises(TypeError, match=r"mask 'oim'.*argument 'x'"):
        registry.create("mask", "oim:x")
    with pytest.raises(TypeError, match=r"mask 'oim'.*options colour"):
        registry.create("mask", "oim", colour="red")


def test_an_unknown_name_raises_a_key_error_listing_the_known_names() -> None:
    with pytest.raises(UnknownNameError) as info:
        registry.get("mask", "intersection")
    err = info.value
    assert isinstance(err, KeyError) and isinstance(err, LookupError)
    assert "unknown mask 'intersection'" in str(err)
    for known in ("nium", "oim", "um"):
        assert known in str(err)
    with pytest.raises(KeyError, match="known selector names: .*fixed.*metric"):
        registry.create("selector", "best:oim")


def test_an_unknown_kind_raises_a_value_error_listing_the_kinds() -> None:
    for call in (
        lambda: registry.names("masks"),
        lambda: registry.get("masks", "oim"),
        lambda: registry.create("strategy", "oim"),
        lambda: registry.providers("x"),
    ):
        with pytest.raises(UnknownKindError) as info:
            call()
        assert isinstance(info.value, ValueError)
        for kind in ("verifier", "attention", "mask", "selector", "explainer"):
            assert kind in str(info.value)


@pytest.mark.parametrize("spec", ["", ":oim", "  "])
def test_an_empty_spec_is_a_value_error(spec: str) -> None:
    with pytest.raises(ValueError, match="empty mask spec"):
        registry.create("mask", spec)


def test_a_spec_that_is_not_a_string_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="must be a string"):
        registry.create("mask", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be a string"):
        registry.get("mask", 3)  # type: ignore[arg-type]


def test_every_hookspec_has_exactly_one_kind() -> None:
    specs = {
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, f"{hookspecs.PROJECT_NAME}_spec")
    }
    assert set(registry.HOOKS.values()) == specs
    assert len(registry.KINDS) == len(specs) == 5


def test_xfr_registry_attribute_is_the_registry_module_with_one_default() -> None:
    assert xfr.registry is registry
    assert registry.default() is registry.default()
    assert isinstance(registry.default(), registry.Registry)
