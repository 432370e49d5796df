"""A plugin that fails (to import, with an unknown hook, in its hook) is reported with its name,
package and error, and every other plugin still loads. Real distributions, real entry points."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from plugin_dists import UNRELATED_BUILTINS, DistFactory, dist_factory, mask_plugin_source

from xfr.registry import Registry


@pytest.fixture
def dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DistFactory]:
    yield from dist_factory(tmp_path, monkeypatch)


def _broken(reg: Registry) -> dict[str, tuple[str | None, str]]:
    return {name: (package, error) for name, package, error in reg.broken()}


def test_a_plugin_that_fails_to_import_is_reported_and_the_rest_still_load(
    dists: DistFactory,
) -> None:
    missing = dists.module("not_installed_dependency")
    dists.make_dist(
        "xfr-import-fails", {"needs_dep": "bad"}, {"bad": f"import {missing}\n"}, version="2.3"
    )
    dists.make_dist("xfr-good", {"good": "good"}, {"good": mask_plugin_source("good-mask")})
    reg = Registry(disabled=UNRELATED_BUILTINS)
    package, error = _broken(reg)["needs_dep"]
    assert package == "xfr-import-fails"
    assert error.startswith("ModuleNotFoundError:") and missing in error
    assert {"good-mask", "oim", "um", "nium"} <= set(reg.names("mask"))
    assert "Traceback" in next(b for b in reg.broken() if b.name == "needs_dep").details


def test_an_exception_raised_at_import_is_reported_with_its_text(dists: DistFactory) -> None:
    dists.make_dist(
        "xfr-raises", {"raiser": "raiser"}, {"raiser": "raise RuntimeError('no GPU here')\n"}
    )
    reg = Registry(disabled=UNRELATED_BUILTINS)
    assert _broken(reg)["raiser"] == ("xfr-raises", "RuntimeError: no GPU here")
    assert "metric" in reg.names("selector")


def test_an_unknown_hook_is_rejected_naming_the_hook(dists: DistFactory) -> None:
    source = """
        import xfr

        class Sel:
            name = "never"

        @xfr.hookimpl
        def xfr_selectors():
            return {"never": Sel}

        @xfr.hookimpl
        def xfr_mask_strategys():  # typo: not a hook of xfr
            return {}
    """
    dists.make_dist("xfr-typo", {"typo": "typo"}, {"typo": source})
    reg = Registry(disabled=UNRELATED_BUILTINS)
    package, error = _broken(reg)["typo"]
    assert package == "xfr-typo"
    assert "unknown hook xfr_mask_strategys" in error
    assert "xfr_mask_strategies" in error  # the hooks that do exist are listed
    assert "never" not in reg.names("selector")  # nothing of a rejected plugin is used
    assert "oim" in reg.names("mask")


def test_a_hook_with_arguments_the_spec_lacks_is_rejected(dists: DistFactory) -> None:
    source = """
        import xfr

        @xfr.hookimpl
        def xfr_mask_strategies(config):
            return {}
    """
    dists.make_dist("xfr-args", {"args": "args"}, {"args": source})
    _, error = _broken(Registry(disabled=UNRELATED_BUILTINS))["args"]
    assert "invalid hook implementation" in error and "config" in error


def test_a_module_without_any_hookimpl_is_reported(dists: DistFactory) -> None:
    source = """
        def xfr_mask_strategies():  # forgot @xfr.hookimpl
            return {}
    """
    dists.make_dist("xfr-unmarked", {"unmarked": "unmarked"}, {"unmarked": source})
    _, error = _broken(Registry(disabled=UNRELATED_BUILTINS))["unmarked"]
    assert "no hook implementation" in error


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("raise OSError('weights missing')", "xfr_mask_strategies raised OSError: weights missing"),
        ("return ['oim']", "xfr_mask_strategies returned list, expected a {name: factory}"),
        ("return {'a:b': object}", "invalid name 'a:b'"),
        ("return {'': object}", "invalid name ''"),
        ("return {3: object}", "invalid name 3"),
        ("return {'ok': 42}", "the factory of 'ok' is not callable (int)"),
    ],
)
def test_a_hook_that_raises_or_returns_a_bad_mapping_breaks_only_its_plugin(
    dists: DistFactory, body: str, expected: str
) -> None:
    source = f"""
        import xfr

        class Sel:
            name = "other-hook"

        @xfr.hookimpl
        def xfr_selectors():
            return {{"other-hook": Sel}}

        @xfr.hookimpl
        def xfr_mask_strategies():
            {body}
    """
    dists.make_dist("xfr-bad-hook", {"bad_hook": "bad_hook"}, {"bad_hook": source})
    dists.make_dist("xfr-fine", {"fine": "fine"}, {"fine": mask_plugin_source("fine-mask")})
    reg = Registry(disabled=UNRELATED_BUILTINS)
    package, error = _broken(reg)["bad_hook"]
    assert package == "xfr-bad-hook"
    assert expected in error
    # The whole plugin is out, its valid hook included; the others are in.
    assert "other-hook" not in reg.names("selector")
    assert {"fine-mask", "oim"} <= set(reg.names("mask"))
    assert [name for name, _, _ in reg.plugins()].count("bad_hook") == 0


def test_an_entry_point_name_used_by_two_packages_keeps_the_first(dists: DistFactory) -> None:
    dists.make_dist("xfr-first", {"same": "first"}, {"first": mask_plugin_source("first-mask")})
    dists.make_dist("xfr-second", {"same": "second"}, {"second": mask_plugin_source("2nd")})
    reg = Registry(disabled=UNRELATED_BUILTINS)
    names = set(reg.names("mask"))
    assert len({"first-mask", "2nd"} & names) == 1
    [(name, package, error)] = reg.broken()
    assert name == "same"
    assert "already used by package" in error
    assert package in {"xfr-first", "xfr-second"}


def test_an_unknown_name_error_points_at_the_broken_plugins(dists: DistFactory) -> None:
    dists.make_dist("xfr-gone", {"gone": "gone"}, {"gone": "raise ImportError('x')\n"})
    reg = Registry(disabled=UNRELATED_BUILTINS)
    with pytest.raises(KeyError, match=r"failed to load \(see `xfr plugins`\): gone"):
        reg.get("mask", "gone-mask")
