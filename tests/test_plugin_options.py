"""Typed options (issue 17; docs/hooks.md, "Options"): each built-in plugin declares its options
once; an unknown or ill-typed option raises ``OptionTypeError``, a bad value ``OptionError``,
each message starting with the plugin's name; ``xfr plugins --options NAME`` prints the
declaration."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import pytest

from xfr import cli, registry
from xfr.errors import OptionError, OptionTypeError
from xfr.options import Options, declaration, describe, expected, option

#: Every built-in plugin that takes options: (kind, name, a bad value of the right type).
DECLARED: list[tuple[str, str, dict[str, Any]]] = [
    ("explainer", "paper", {"batch_size": 0}),
    ("explainer", "minplus", {"step": 0}),
    ("explainer", "avg", {"plus_start": "grey"}),
    ("explainer", "rise", {"p_keep": 1.5}),
    ("explainer", "lime", {"kernel_width": float("nan")}),
    ("explainer", "relevance", {"target": "logits"}),
    ("explainer", "xssab", {"bound": "cosine"}),
    ("explainer", "corrrise", {"n_masks": 1}),
    ("explainer", "bilrp", {"dims": 0}),
    ("attention", "attention", {"head_fusion": "median"}),
    ("attention", "rollout", {"discard_ratio": 1.0}),
    ("attention", "vit-lrp", {"alpha": 0}),
    ("attention", "nograd-lrp", {"batch_size": 0}),
    ("attention", "grad-rollout", {"discard_ratio": -0.1}),
    ("selector", "metric", {"d_floor": 0.0}),
    ("selector", "fixed", {"d_floor": float("inf")}),
]
IDS = [f"{kind}-{name}" for kind, name, _ in DECLARED]


def _declared(kind: str, name: str) -> type:
    spec = declaration(registry.get(kind, name))
    assert spec is not None, f"{kind} {name!r} declares no options"
    return spec


@pytest.mark.parametrize(("kind", "name", "bad"), DECLARED, ids=IDS)
def test_every_built_in_plugin_declares_its_options_once(kind: str, name: str,
                                                         bad: dict[str, Any]) -> None:
    spec = _declared(kind, name)
    assert issubclass(spec, Options) and spec.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert spec.owner == name
    infos = describe(spec)
    assert infos and all(i.help and i.type for i in infos)
    assert set(bad) <= {i.name for i in infos}
    # the defaults are the declaration's: building with none gives them
    defaults = {i.name: i.default for i in infos}
    if kind == "explainer":
        assert registry.create(kind, name).options == defaults
    else:
        assert spec() == spec.parse({})  # type: ignore[attr-defined]


@pytest.mark.parametrize(("kind", "name", "bad"), DECLARED, ids=IDS)
def test_an_unknown_option_is_one_type_error_naming_the_plugin(kind: str, name: str,
                                                               bad: dict[str, Any]) -> None:
    with pytest.raises(OptionTypeError) as info:
        registry.create(kind, name, bogus=1)
    known = ", ".join(sorted(i.name for i in describe(_declared(kind, name))))
    assert str(info.value) == f"{name}: unknown option(s) 'bogus'; options: {known}"


@pytest.mark.parametrize(("kind", "name", "bad"), DECLARED, ids=IDS)
def test_an_ill_typed_option_is_a_type_error_and_a_bad_value_a_value_error(
        kind: str, name: str, bad: dict[str, Any]) -> None:
    [(key, value)] = bad.items()
    hints = {f.name: f for f in dataclasses.fields(_declared(kind, name))}
    words = expected(describe_type(kind, name, key), hints[key].metadata)
    with pytest.raises(OptionTypeError) as typed:
        registry.create(kind, name, **{key: object()})
    assert str(typed.value).startswith(f"{name}: {key} must be {words}, got <object")
    with pytest.raises(OptionError) as valued:
        registry.create(kind, name, **bad)
    assert str(valued.value) == f"{name}: {key} must be {words}, got {value!r}"
    assert not isinstance(valued.value, TypeError)


def describe_type(kind: str, name: str, key: str) -> Any:
    import typing

    return typing.get_type_hints(_declared(kind, name))[key]


def test_per_call_options_of_the_explainers_are_checked_the_same_way() -> None:
    rise = registry.create("explainer", "rise")
    with pytest.raises(OptionTypeError, match="^rise: unknown option"):
        rise.options_for(n_mask=5)
    with pytest.raises(OptionTypeError, match="^rise: grid must be an integer >= 1, got '5'"):
        rise.options_for(grid="5")
    assert rise.options_for(grid=7)["grid"] == 7 and rise.options["grid"] == 5
    paper = registry.create("explainer", "paper")
    with pytest.raises(OptionTypeError, match="^paper: generator must be a string, got 3"):
        paper.with_options(generator=3)
    with pytest.raises(OptionTypeError, match="^paper: unknown option"):
        paper.with_options(colour="red")


def test_masks_take_no_options_and_say_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert declaration(registry.get("mask", "oim")) is None
    assert cli.main(["plugins", "--options", "oim"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "mask strategy 'oim' (xfr, plugin masks):", "  no options"]


@pytest.mark.parametrize(("kind", "name", "bad"), DECLARED, ids=IDS)
def test_xfr_plugins_options_prints_the_declaration(
        kind: str, name: str, bad: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plugins", "--options", name, "--kind", kind]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{registry.KIND_WORDS[kind]} {name!r} (xfr, plugin ")
    assert lines[1].split() == ["OPTION", "TYPE", "DEFAULT", "HELP"]
    infos = describe(_declared(kind, name))
    assert len(lines) == 2 + len(infos)
    for line, i in zip(lines[2:], infos, strict=True):
        assert line.split()[0] == i.name
        assert f" {i.type} " in line and f" {i.default!r} " in line and line.endswith(i.help)


def test_xfr_plugins_options_json_and_an_unknown_name(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plugins", "--options", "rollout", "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)
    assert (entry["kind"], entry["name"], entry["declared"]) == ("attention", "rollout", True)
    assert entry["options"][1] == {
        "name": "variant", "type": "'authors' | 'abnar'", "default": "authors",
        "help": "authors: the paper's authors' rollout; abnar: Abnar & Zuidema's"}
    assert cli.main(["plugins", "--options", "rolout"]) == 2
    assert "no plugin called 'rolout'; names: " in capsys.readouterr().err


# --- the machinery (xfr.options) ---------------------------------------------------------------
@dataclass(frozen=True)
class Example(Options):
    owner: ClassVar[str] = "example"

    mode: Literal["a", "b"] = option("a", help="the mode")
    size: int | tuple[int, int] = option(8, help="a side or a pair", low=1)
    ratio: float | None = option(None, help="a share", low=0, high=1, high_open=True)
    table: Mapping[str, Collection[str]] = option(factory=dict, help="names to names")

    def check(self) -> None:
        if self.mode == "b" and self.ratio is None:
            raise self.invalid("ratio", "a number when mode is 'b'", self.ratio)


def test_the_words_of_each_type() -> None:
    fields = {f.name: f.metadata for f in dataclasses.fields(Example)}
    hints = {"mode": Literal["a", "b"], "size": int | tuple[int, int], "ratio": float | None}
    assert expected(hints["mode"], fields["mode"]) == "one of 'a', 'b'"
    assert expected(hints["size"], fields["size"]) == ("an integer >= 1 or a pair of integers "
                                                       ">= 1")
    assert expected(hints["ratio"], fields["ratio"]) == "a number in [0, 1) or None"
    assert [(i.name, i.type, i.default) for i in describe(Example)] == [
        ("mode", "'a' | 'b'", "a"), ("size", "int | tuple[int, int]", 8),
        ("ratio", "float | None", None), ("table", "Mapping[str, Collection[str]]", {})]


@pytest.mark.parametrize(("values", "error", "message"), [
    ({"mode": "c"}, OptionError, "example: mode must be one of 'a', 'b', got 'c'"),
    ({"mode": 1}, OptionTypeError, "example: mode must be one of 'a', 'b', got 1"),
    ({"size": (3, 0)}, OptionError, "example: size must be an integer >= 1 or a pair of "
                                    "integers >= 1, got (3, 0)"),
    ({"size": (3,)}, OptionTypeError, "example: size must be"),
    ({"size": True}, OptionTypeError, "example: size must be"),
    ({"ratio": float("nan")}, OptionError, "example: ratio must be a number in [0, 1)"),
    ({"table": {"x": "abc"}}, OptionTypeError, "example: table must be a dict"),
    ({"mode": "b"}, OptionError, "example: ratio must be a number when mode is 'b', got None"),
    ({"Mode": "a"}, OptionTypeError, "example: unknown option(s) 'Mode'; options: mode, ratio, "
                                     "size, table"),
])
def test_one_check_one_message_format(values: dict[str, Any], error: type[Exception],
                                      message: str) -> None:
    with pytest.raises(error) as info:
        Example.parse(values)
    assert str(info.value).startswith(message)
    assert isinstance(info.value, TypeError) == (error is OptionTypeError)


def test_parse_over_a_base_keeps_the_rest_and_accepts_numpy_numbers_and_sets() -> None:
    import numpy as np

    base = Example.parse({"size": [4, 6], "table": {"x": {"y"}}})
    changed = Example.parse({"ratio": np.float32(0.5), "mode": "b"}, base=base)
    assert (changed.size, changed.table, changed.mode) == ([4, 6], {"x": {"y"}}, "b")
    assert Example.parse({"size": np.int64(3)}).size == 3
    assert base.as_dict() == {"mode": "a", "size": [4, 6], "ratio": None, "table": {"x": {"y"}}}
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.mode = "b"  # type: ignore[misc]
