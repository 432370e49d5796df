"""Every hook of ``xfr/hookspecs.py`` is documented in ``docs/hooks.md`` (and nothing else is),
in the manner of datasette's ``test_docs.py``."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from xfr import hookspecs, registry

DOCS = Path(__file__).resolve().parents[1] / "docs" / "hooks.md"


def hookspec_names() -> list[str]:
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return sorted(
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, marker)
    )


def sections() -> dict[str, str]:
    """``{hook: its section text}`` for every ``### xfr_...`` heading."""
    text = DOCS.read_text()
    parts = re.split(r"^### (xfr_\w+)[ \t]*$", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1].split("\n## ")[0] for i in range(1, len(parts), 2)}


def test_the_hookspec_module_defines_hooks() -> None:
    assert len(hookspec_names()) == 5


@pytest.mark.parametrize("hook", hookspec_names())
def test_every_hook_is_documented(hook: str) -> None:
    assert hook in sections(), f"{hook} has no '### {hook}' section in {DOCS}"


def test_no_documented_hook_is_missing_from_the_hookspecs() -> None:
    assert sorted(sections()) == hookspec_names()


@pytest.mark.parametrize("hook", hookspec_names())
def test_each_hook_section_names_its_kind_and_shows_an_implementation(hook: str) -> None:
    kind = next(k for k, h in registry.HOOKS.items() if h == hook)
    section = sections()[hook]
    assert f"Kind `{kind}`" in section
    assert "@xfr.hookimpl" in section and f"def {hook}():" in section


def test_the_disable_variable_and_every_kind_are_documented() -> None:
    text = DOCS.read_text()
    assert registry.ENV_DISABLE in text
    for kind in registry.KINDS:
        assert f"`{kind}`" in text
