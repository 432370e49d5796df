"""Typed plugin options: each plugin declares its options once, as a frozen dataclass.

A declaration is a subclass of :class:`Options` whose fields are the options, each with a type
(the annotation), a default and a one-line help (:func:`option`)::

    @dataclass(frozen=True)
    class RolloutOptions(Options):
        owner: ClassVar[str] = "rollout"

        variant: Literal["authors", "abnar"] = option("authors", help="whose rollout")
        batch_size: int = option(8, help="images per model call", low=1)

``RolloutOptions.parse({"variant": "abnar"})`` checks every value against its field and
returns the frozen object. What goes wrong raises one of two exceptions (docs/hooks.md,
"Options"), always with the message ``"<owner>: <what>"``:

- :class:`~xfr.errors.OptionTypeError` (a ``TypeError``) for an unknown option
  (``"rollout: unknown option(s) 'colour'; options: batch_size, variant"``) or a value of the
  wrong type (``"rollout: batch_size must be an integer >= 1, got '8'"``);
- :class:`~xfr.errors.OptionError` (a ``ValueError``) for a value of the right type that
  cannot work (``"rollout: batch_size must be an integer >= 1, got 0"``, a string that is not
  one of the ``Literal`` choices).

A factory announces its declaration through its ``xfr_options`` attribute (the dataclass, or
a function without arguments that returns it, so that listing the plugins imports nothing);
``xfr plugins --options NAME`` prints it (:func:`describe`).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

from xfr.errors import OptionError, OptionTypeError

__all__ = [
    "DECLARATION_ATTRIBUTE",
    "OptionInfo",
    "Options",
    "declaration",
    "describe",
    "expected",
    "option",
    "unknown_options",
]

#: The attribute of a factory that names its options declaration.
DECLARATION_ATTRIBUTE = "xfr_options"

_T = TypeVar("_T", bound="Options")
_MISSING: Any = dataclasses.MISSING


def option(default: Any = _MISSING, *, help: str, factory: Callable[[], Any] | None = None,
           low: float | None = None, high: float | None = None, low_open: bool = False,
           high_open: bool = False) -> Any:
    """One field of an :class:`Options` declaration: its ``default`` (or a ``factory`` of
    defaults, for a dict), its one-line ``help`` and, for numbers, the range it must lie in
    (``low``/``high``, inclusive unless ``low_open``/``high_open``; a bounded number must be
    finite)."""
    metadata = {"help": help, "low": low, "high": high, "low_open": low_open,
                "high_open": high_open}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def unknown_options(owner: str, unknown: Iterable[str], known: Iterable[str]) -> OptionTypeError:
    """The error for options nobody declared: ``"owner: unknown option(s) 'a'; options: ..."``."""
    names = ", ".join(repr(n) for n in sorted(unknown))
    return OptionTypeError(f"{owner}: unknown option(s) {names}; options: "
                           f"{', '.join(sorted(known)) or 'none'}")


@dataclass(frozen=True)
class Options:
    """Base of every options declaration (see the module docstring).

    Subclasses are frozen dataclasses; they set :attr:`owner` (how messages name the plugin)
    and may override :meth:`check` for rules that involve more than one field or that
    normalise a value.
    """

    #: How error messages name the plugin (``"paper"``, ``"rollout"``).
    owner: ClassVar[str] = "options"

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            _check_field(self.owner, f.name, getattr(self, f.name), hints[f.name], f.metadata)
        self.check()

    def check(self) -> None:
        """Checks beyond each field's type and range; raise with :meth:`invalid`. A value is
        normalised with ``object.__setattr__`` (and must then pass again unchanged)."""

    def invalid(self, name: str, expected: str, value: Any, *,
                type_error: bool = False) -> OptionError | OptionTypeError:
        """The error for option ``name``: ``"owner: name must be <expected>, got <value>"``."""
        cls = OptionTypeError if type_error else OptionError
        return cls(f"{self.owner}: {name} must be {expected}, got {value!r}")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The option names, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def parse(cls: type[_T], values: Mapping[str, Any] | None = None,
              base: _T | None = None) -> _T:
        """The options ``values`` over the defaults (or over ``base``), checked."""
        values = dict(values or {})
        known = cls.names()
        unknown = set(values) - set(known)
        if unknown:
            raise unknown_options(cls.owner, unknown, known)
        if base is None:
            return cls(**values)
        return dataclasses.replace(base, **values)

    def as_dict(self) -> dict[str, Any]:
        """``{name: value}`` in declaration order (values as given, not copied)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


# --------------------------------------------------------------------------- describing


@dataclass(frozen=True)
class OptionInfo:
    """One declared option, as ``xfr plugins --options`` prints it."""

    name: str
    type: str
    default: Any
    help: str


def declaration(factory: Any) -> type | None:
    """The options declaration (a dataclass) of a factory, from its ``xfr_options`` attribute,
    or ``None`` when it declares none."""
    declared = getattr(factory, DECLARATION_ATTRIBUTE, None)
    if declared is None:
        return None
    if not (isinstance(declared, type) and dataclasses.is_dataclass(declared)):
        declared = declared()
    if not (isinstance(declared, type) and dataclasses.is_dataclass(declared)):
        raise TypeError(f"{DECLARATION_ATTRIBUTE} of {factory!r} is not a dataclass: "
                        f"{declared!r}")
    return declared


def describe(spec: type) -> list[OptionInfo]:
    """Name, type, default and help of every field of a dataclass ``spec``."""
    hints = _hints(spec)
    out = []
    for f in dataclasses.fields(spec):
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        out.append(OptionInfo(f.name, type_text(hints[f.name]), default,
                              str(f.metadata.get("help", ""))))
    return out


# --------------------------------------------------------------------------- types


def _hints(spec: type) -> dict[str, Any]:
    """The resolved annotations of ``spec`` and its bases (each in its own module)."""
    return typing.get_type_hints(spec)


def _arms(hint: Any) -> tuple[Any, ...]:
    origin = get_origin(hint)
    if origin is Union or origin is types.UnionType:
        return get_args(hint)
    return (hint,)


def type_text(hint: Any) -> str:
    """A type as people write it: ``int | None``, ``'auto' | 'logit'``, ``dict[str, Any]``."""
    if hint is Any:
        return "Any"
    if hint is None or hint is type(None):
        return "None"
    origin = get_origin(hint)
    if origin is Union or origin is types.UnionType:
        return " | ".join(type_text(a) for a in get_args(hint))
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(hint))
    if origin is not None:
        args = get_args(hint)
        name = getattr(origin, "__name__", str(origin))
        if not args:
            return name
        inner = ", ".join("..." if a is Ellipsis else type_text(a) for a in args)
        return f"{name}[{inner}]"
    return getattr(hint, "__name__", str(hint))


_WORDS = {bool: ("True or False", "booleans"), int: ("an integer", "integers"),
          float: ("a number", "numbers"), str: ("a string", "strings")}


def expected(hint: Any, metadata: Mapping[str, Any] | None = None) -> str:
    """What a value of ``hint`` is, in words, with the field's range: ``"an integer >= 1"``,
    ``"a number in (0, 1]"``, ``"one of 'zeros', 'mean', 'blur'"``."""
    bound = _range_text(metadata or {})
    return " or ".join(_words(a, bound) for a in _arms(hint))


def _words(hint: Any, bound: str, plural: bool = False) -> str:
    if hint is Any:
        return "anything"
    if hint is None or hint is type(None):
        return "None"
    if hint in _WORDS:
        word = _WORDS[hint][1 if plural else 0]
        return f"{word}{bound}" if hint in (int, float) else word
    origin = get_origin(hint)
    args = get_args(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple and len(args) == 2 and args[1] is not Ellipsis and args[0] == args[1]:
        return f"a pair of {_words(args[0], bound, plural=True)}"
    if origin in (list, tuple, Sequence, Collection) and args:
        return f"a list of {_words(args[0], bound, plural=True)}"
    if origin in (dict, Mapping) and args:
        return f"a dict {{{type_text(args[0])}: {type_text(args[1])}}}"
    return f"a {type_text(hint)}"


def _range_text(metadata: Mapping[str, Any]) -> str:
    low, high = metadata.get("low"), metadata.get("high")
    lo_open, hi_open = bool(metadata.get("low_open")), bool(metadata.get("high_open"))
    if low is not None and high is not None:
        return f" in {'(' if lo_open else '['}{low:g}, {high:g}{')' if hi_open else ']'}"
    if low is not None:
        return f" {'>' if lo_open else '>='} {low:g}"
    if high is not None:
        return f" {'<' if hi_open else '<='} {high:g}"
    return ""


def _is(value: Any, hint: Any) -> bool:
    """Whether ``value`` has the type ``hint`` (``Literal`` choices count as the choices'
    types here; whether the value is one of them is checked apart)."""
    if hint is Any:
        return True
    if hint is None or hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    origin = get_origin(hint)
    args = get_args(hint)
    if origin is Union or origin is types.UnionType:
        return any(_is(value, a) for a in args)
    if origin is Literal:
        return any(type(value) is type(a) for a in args)
    if origin in (list, tuple, Sequence, Collection):
        kinds = (list, tuple, set, frozenset) if origin is Collection else (list, tuple)
        if not isinstance(value, kinds):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(
                _is(v, a) for v, a in zip(value, args, strict=True))
        return not args or all(_is(v, args[0]) for v in value)
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            return False
        return not args or all(_is(k, args[0]) and _is(v, args[1]) for k, v in value.items())
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _fits(value: Any, hint: Any, metadata: Mapping[str, Any]) -> bool:
    """Whether a value of the right type is a ``Literal`` choice and within the range (for a
    dict: each key a choice of its key type, each value a choice of its value type and within
    the range)."""
    for arm in _arms(hint):
        if not _is(value, arm):
            continue
        origin = get_origin(arm)
        if origin is Literal:
            if value in get_args(arm):
                return True
            continue
        args = get_args(arm)
        if origin in (dict, Mapping) and args:
            if all(_fits(k, args[0], {}) and _fits(v, args[1], metadata)
                   for k, v in value.items()):
                return True
            continue
        return _in_range(value, metadata)
    return False


def _in_range(value: Any, metadata: Mapping[str, Any]) -> bool:
    low, high = metadata.get("low"), metadata.get("high")
    if low is None and high is None or value is None or isinstance(value, (str, bool)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_in_range(v, metadata) for v in value)
    if not isinstance(value, numbers.Real):
        return True
    v = float(value)
    if not math.isfinite(v):
        return False
    if low is not None and (v <= low if metadata.get("low_open") else v < low):
        return False
    return not (high is not None and (v >= high if metadata.get("high_open") else v > high))


def _check_field(owner: str, name: str, value: Any, hint: Any,
                 metadata: Mapping[str, Any]) -> None:
    if not _is(value, hint):
        raise OptionTypeError(f"{owner}: {name} must be {expected(hint, metadata)}, "
                              f"got {value!r}")
    if not _fits(value, hint, metadata):
        raise OptionError(f"{owner}: {name} must be {expected(hint, metadata)}, got {value!r}")
