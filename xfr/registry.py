"""The plugin registry: every verifier, attention generator, mask strategy, selector and explainer
of xfr, found through pluggy hooks (:mod:`xfr.hookspecs`) and the ``xfr`` entry-point group.

Usage (the module-level functions use one process-wide registry, created on first use)::

    from xfr import registry

    registry.names("mask")                    # ['nium', 'oim', 'um']
    registry.get("mask", "oim")               # the factory
    registry.create("selector", "fixed:oim")  # factory("oim")
    registry.providers("mask")                # who provides what (package, version)
    registry.broken()                         # plugins that failed to load, and why

An application that embeds xfr can build its own, isolated registry::

    reg = registry.Registry(load_entry_points=False)
    reg.register(my_plugin_module)

Rules (tested in ``tests/test_registry*.py``, documented in ``docs/hooks.md``):

- Discovery happens on first use, never at ``import xfr``; it is guarded by a lock, so
  concurrent first uses load every plugin exactly once.
- Every entry point of the group ``xfr`` is loaded on its own: one that fails to import, uses a
  hook xfr does not define, or whose hook raises or returns something other than a
  ``{name: factory}`` mapping is reported by :func:`broken` (plugin, package, error) and left
  out; the others still load. The built-in plugins are entry points like any other.
- ``XFR_DISABLE_PLUGINS=a,b`` (entry-point names) and ``Registry(disabled=[...])`` block
  plugins: a blocked plugin is not even imported. Both lists apply together.
- Each plugin's hook implementation is called on its own, so every name is attributed to its
  plugin and distribution. When two plugins provide the same name of the same kind, that name
  is listed by :func:`names` and :func:`providers`, but :func:`get`/:func:`create` raise
  :class:`~xfr.errors.DuplicateNameError` naming both packages (the other names stay usable).
- An unknown name raises :class:`~xfr.errors.UnknownNameError` (a ``KeyError``) listing the
  known names; an unknown kind raises :class:`~xfr.errors.UnknownKindError` (a ``ValueError``)
  listing the kinds.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import os
import threading
import traceback
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from xfr import hookspecs
from xfr.errors import (
    DuplicateNameError,
    OptionError,
    OptionTypeError,
    PluginError,
    UnknownKindError,
    UnknownNameError,
)
from xfr.hookspecs import Factory

__all__ = [
    "ENTRY_POINT_GROUP",
    "ENV_DISABLE",
    "KIND_WORDS",
    "OWN_PACKAGE",
    "HOOKS",
    "KINDS",
    "BrokenPlugin",
    "DuplicateNameError",
    "Factory",
    "Provider",
    "Registry",
    "UnknownKindError",
    "UnknownNameError",
    "broken",
    "describe",
    "create",
    "default",
    "get",
    "names",
    "providers",
]

#: The entry-point group that announces plugin modules (``[project.entry-points.xfr]``).
ENTRY_POINT_GROUP = "xfr"
#: Comma-separated entry-point names of plugins to block.
ENV_DISABLE = "XFR_DISABLE_PLUGINS"
#: The distribution of xfr itself (its built-in plugins: ``masks``, ``selectors``...).
OWN_PACKAGE = "xfr"

#: How messages call each kind.
KIND_WORDS: dict[str, str] = {
    "verifier": "verifier",
    "attention": "attention generator",
    "mask": "mask strategy",
    "selector": "selector",
    "explainer": "explainer",
}

#: Registry kind -> the hook that provides it (one hook per kind, :mod:`xfr.hookspecs`).
HOOKS: dict[str, str] = {
    "verifier": "xfr_verifiers",
    "attention": "xfr_attention_generators",
    "mask": "xfr_mask_strategies",
    "selector": "xfr_selectors",
    "explainer": "xfr_explainers",
}
#: The registry kinds, in display order.
KINDS: tuple[str, ...] = tuple(HOOKS)

@dataclass(frozen=True)
class Provider:
    """One name of one kind and the plugin that provides it."""

    kind: str
    name: str
    #: Plugin name: the entry-point name, or the name given to :meth:`Registry.register`.
    plugin: str
    #: Distribution that declares the entry point (``None`` for in-process plugins).
    package: str | None
    version: str | None
    factory: Factory = field(repr=False, compare=False)

    def describe(self) -> str:
        """``package 'xfr' 0.1.0 (plugin 'masks')``, for messages."""
        if self.package is None:
            return f"in-process plugin {self.plugin!r}"
        version = f" {self.version}" if self.version else ""
        return f"package {self.package!r}{version} (plugin {self.plugin!r})"


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin that could not be loaded; unpacks as ``(name, package, error)``."""

    name: str
    package: str | None
    #: ``"ExceptionType: message"``.
    error: str
    #: The full traceback, when there was an exception (for ``xfr --debug plugins``).
    details: str = field(default="", repr=False, compare=False)

    def __iter__(self) -> Iterator[str | None]:
        return iter((self.name, self.package, self.error))


@dataclass
class _Plugin:
    name: str
    obj: Any
    package: str | None
    version: str | None


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _env_disabled() -> set[str]:
    return {n.strip() for n in os.environ.get(ENV_DISABLE, "").split(",") if n.strip()}


def _check_kind(kind: str) -> str:
    if kind not in HOOKS:
        raise UnknownKindError(f"unknown plugin kind {kind!r}; kinds: {', '.join(KINDS)}")
    return kind


class Registry:
    """A plugin manager (pluggy project ``xfr``) and the names its plugins provide.

    ``disabled``: entry-point / plugin names to block, in addition to those in
    ``$XFR_DISABLE_PLUGINS``. ``load_entry_points=False`` gives an empty registry that only
    knows the plugins passed to :meth:`register`. Nothing is loaded before first use.
    """

    def __init__(
        self, disabled: Iterable[str] | None = None, load_entry_points: bool = True
    ) -> None:
        if isinstance(disabled, str):
            raise TypeError("disabled must be an iterable of plugin names, not a string")
        self._disabled = frozenset(disabled or ()) | _env_disabled()
        self._load_entry_points = load_entry_points
        self._lock = threading.RLock()
        self._pm: pluggy.PluginManager | None = None
        self._plugins: dict[str, _Plugin] = {}
        self._broken: list[BrokenPlugin] = []
        self._table: dict[str, dict[str, list[Provider]]] | None = None

    # -- loading ---------------------------------------------------------------------------
    def _manager(self) -> pluggy.PluginManager:
        """The plugin manager, with the entry points loaded on the first call."""
        with self._lock:
            if self._pm is None:
                pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
                pm.add_hookspecs(hookspecs)
                for name in self._disabled:
                    pm.set_blocked(name)
                self._pm = pm
                if self._load_entry_points:
                    self._load_entry_point_plugins()
                # Every plugin with an unknown hook was refused on its own; this is the
                # safety net pluggy offers for the rest.
                pm.check_pending()
            return self._pm

    def _load_entry_point_plugins(self) -> None:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            package = dist.metadata["Name"] if dist is not None else None
            version = dist.version if dist is not None else None
            if ep.name in self._disabled:
                continue
            if ep.name in self._plugins:
                self._broken.append(
                    BrokenPlugin(
                        ep.name,
                        package,
                        f"entry-point name {ep.name!r} ({ep.value}) is already used by package "
                        f"{self._plugins[ep.name].package!r}",
                    )
                )
                continue
            try:
                obj = ep.load()
            except (Exception, SystemExit) as exc:
                self._broken.append(
                    BrokenPlugin(ep.name, package, _error_text(exc), traceback.format_exc())
                )
                continue
            try:
                self._register(obj, ep.name, package, version)
            except PluginError as exc:
                self._broken.append(BrokenPlugin(ep.name, package, str(exc)))

    def _register(
        self, obj: Any, name: str | None, package: str | None, version: str | None
    ) -> str | None:
        """Register one plugin object; ``PluginError`` (and nothing registered) if invalid."""
        pm = self._pm
        assert pm is not None
        try:
            name = pm.register(obj, name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"invalid hook implementation: {exc}") from exc
        except ValueError as exc:  # name or object already registered
            raise PluginError(str(exc)) from exc
        if name is None:  # blocked
            return None
        unknown = sorted(
            caller.name
            for caller in pm.get_hookcallers(obj) or []
            if caller.spec is None
            and any(i.plugin is obj and not i.optionalhook for i in caller.get_hookimpls())
        )
        if unknown:
            pm.unregister(obj)
            raise PluginError(
                f"unknown hook {', '.join(unknown)} (xfr defines: {', '.join(HOOKS.values())})"
            )
        if not any(pm.get_hookcallers(obj) or []):
            pm.unregister(obj)
            raise PluginError(
                f"no hook implementation (no function marked @xfr.hookimpl; "
                f"hooks: {', '.join(HOOKS.values())})"
            )
        self._plugins[name] = _Plugin(name, obj, package, version)
        self._table = None
        return name

    def register(
        self,
        plugin: ModuleType | object,
        name: str | None = None,
        *,
        package: str | None = None,
        version: str | None = None,
    ) -> str | None:
        """Register a plugin object (a module or any object with ``@xfr.hookimpl`` methods).

        Returns the plugin's name, or ``None`` when that name is disabled. Raises
        :class:`~xfr.errors.PluginError` (a ``UserError``) for an unknown hook, a hook that does
        not match its spec, a plugin without hooks, or a name/object already registered; the
        hooks themselves are called when names are next looked up.
        """
        with self._lock:
            self._manager()
            if name is not None and name in self._disabled:
                return None
            result = self._register(plugin, name, package, version)
            # Fail now, in the caller's hands, if the new plugin's hooks misbehave.
            self._build_table(raise_for=result)
            return result

    def unregister(self, name: str) -> None:
        """Remove the plugin called ``name`` (``UnknownNameError`` if there is none)."""
        with self._lock:
            pm = self._manager()
            if name not in self._plugins:
                raise UnknownNameError(
                    f"no plugin {name!r}; plugins: {', '.join(sorted(self._plugins)) or 'none'}"
                )
            pm.unregister(name=name)
            del self._plugins[name]
            self._table = None

    def _build_table(self, raise_for: str | None = None) -> dict[str, dict[str, list[Provider]]]:
        """Call every plugin's hooks, each on its own, and index the names by kind."""
        pm = self._manager()
        results: dict[str, list[tuple[str, dict[str, Factory]]]] = {}
        failed: dict[str, str] = {}
        order = {name: i for i, name in enumerate(self._plugins)}
        for kind, hook in HOOKS.items():
            impls = sorted(
                getattr(pm.hook, hook).get_hookimpls(), key=lambda i: order.get(i.plugin_name, -1)
            )
            for impl in impls:
                pname = impl.plugin_name
                if pname in failed or pname not in self._plugins:
                    continue
                error = self._call_hook(impl, hook)
                if isinstance(error, str):
                    failed[pname] = error
                else:
                    results.setdefault(pname, []).append((kind, error))
        for pname, error in failed.items():
            plugin = self._plugins.pop(pname)
            pm.unregister(plugin.obj)
            if pname == raise_for:
                raise PluginError(f"plugin {pname!r}: {error}")
            self._broken.append(BrokenPlugin(pname, plugin.package, error))
        table: dict[str, dict[str, list[Provider]]] = {kind: {} for kind in KINDS}
        for pname, plugin in self._plugins.items():
            for kind, mapping in results.get(pname, []):
                for key, factory in mapping.items():
                    table[kind].setdefault(key, []).append(
                        Provider(kind, key, pname, plugin.package, plugin.version, factory)
                    )
        self._table = table
        return table

    @staticmethod
    def _call_hook(impl: Any, hook: str) -> dict[str, Factory] | str:
        """The hook's ``{name: factory}``, or the text of what is wrong with it."""
        if impl.hookwrapper or impl.wrapper:
            return f"{hook}: hook wrappers are not supported; return a {{name: factory}} mapping"
        try:
            result = impl.function()
        except Exception as exc:
            return f"{hook} raised {_error_text(exc)}"
        if result is None:
            return {}
        if not isinstance(result, Mapping):
            return f"{hook} returned {type(result).__name__}, expected a {{name: factory}} mapping"
        mapping: dict[str, Factory] = {}
        for key, factory in result.items():
            if not isinstance(key, str) or not key or ":" in key or key != key.strip():
                return f"{hook}: invalid name {key!r} (a non-empty string without ':')"
            if not callable(factory):
                return f"{hook}: the factory of {key!r} is not callable ({type(factory).__name__})"
            mapping[key] = factory
        return mapping

    def _providers_table(self) -> dict[str, dict[str, list[Provider]]]:
        with self._lock:
            table = self._table
            if table is None:
                table = self._build_table()
            return table

    # -- queries ---------------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        """Sorted names of ``kind`` (names with two providers included)."""
        _check_kind(kind)
        return sorted(self._providers_table()[kind])

    def providers(self, kind: str | None = None) -> list[Provider]:
        """Every provider of ``kind`` (all kinds if ``None``), ordered by kind then name."""
        kinds = KINDS if kind is None else (_check_kind(kind),)
        table = self._providers_table()
        return [p for k in kinds for n in sorted(table[k]) for p in table[k][n]]

    def conflicts(self, kind: str | None = None) -> list[tuple[str, str, list[Provider]]]:
        """``(kind, name, providers)`` for every name with more than one provider."""
        kinds = KINDS if kind is None else (_check_kind(kind),)
        table = self._providers_table()
        return [
            (k, n, list(ps)) for k in kinds for n, ps in sorted(table[k].items()) if len(ps) > 1
        ]

    def broken(self) -> list[BrokenPlugin]:
        """Plugins that failed to load (import error, unknown hook, bad hook result)."""
        self._providers_table()
        with self._lock:
            return list(self._broken)

    def plugins(self) -> list[tuple[str, str | None, str | None]]:
        """``(plugin, package, version)`` of every loaded plugin, in loading order."""
        self._providers_table()
        with self._lock:
            return [(p.name, p.package, p.version) for p in self._plugins.values()]

    @property
    def disabled(self) -> frozenset[str]:
        """The blocked plugin names (``disabled=`` plus ``$XFR_DISABLE_PLUGINS``)."""
        return self._disabled

    def get(self, kind: str, name: str) -> Factory:
        """The factory registered as ``name`` for ``kind``."""
        _check_kind(kind)
        if not isinstance(name, str):
            raise OptionTypeError(f"{kind} name must be a string, not {type(name).__name__}")
        found = self._providers_table()[kind].get(name)
        if not found:
            raise UnknownNameError(self._unknown_message(kind, name))
        if len(found) > 1:
            raise DuplicateNameError(
                f"{kind} {name!r} is provided twice: "
                + " and ".join(p.describe() for p in found)
                + "; " + self.conflict_advice(kind, name, found))
        return found[0].factory

    def conflict_advice(self, kind: str, name: str, found: Sequence[Provider]) -> str:
        """How to block just one provider of ``name``: a plugin of another
        distribution than xfr (blocking one of xfr's own plugins, e.g. ``masks``, would remove
        every built-in name of that plugin), with the other names that plugin provides."""
        table = self._providers_table()
        others = [p for p in found if p.package != OWN_PACKAGE] or list(found)
        keep = [p for p in found if p not in others]
        options = []
        for p in others:
            also = sorted(f"{k} {n!r}" for k in KINDS for n, ps in table[k].items()
                          if (k, n) != (kind, name) and any(q.plugin == p.plugin for q in ps))
            side = f"; that plugin also provides {', '.join(also)}" if also else ""
            where = f"package {p.package!r}" if p.package else "this process"
            options.append(f"{ENV_DISABLE}={p.plugin} (blocks plugin {p.plugin!r} of {where}"
                           f"{side})")
        if keep:
            return (f"to keep the one of {keep[0].describe()}, block the other with "
                    + " or ".join(options))
        return "block one of them with " + " or ".join(options)

    def describe(self, kind: str, name: str) -> str:
        """``mask strategy 'probe-only' (package 'xfr-plugin-example' 0.1.0, plugin
        'probe_only')``: how errors about a plugin's output name it."""
        _check_kind(kind)
        found = self._providers_table()[kind].get(name, []) if isinstance(name, str) else []
        word = KIND_WORDS[kind]
        if len(found) != 1:
            return f"{word} {name!r}"
        p = found[0]
        if p.package is None:
            return f"{word} {name!r} (in-process plugin {p.plugin!r})"
        version = f" {p.version}" if p.version else ""
        return f"{word} {name!r} (package {p.package!r}{version}, plugin {p.plugin!r})"

    def _unknown_message(self, kind: str, name: str) -> str:
        known = self.names(kind)
        msg = f"unknown {kind} {name!r}; known {kind} names: {', '.join(known) or 'none'}"
        if ":" in name:
            msg += f" (use create({kind!r}, {name!r}) for a 'name:argument' spec)"
        broken = self.broken()
        if broken:
            msg += "; plugins that failed to load (see `xfr plugins`): " + ", ".join(
                b.name for b in broken
            )
        return msg

    def create(self, kind: str, spec: str, **options: Any) -> Any:
        """Build the object named by ``spec``: ``"name"`` -> ``factory(**options)``,
        ``"name:argument"`` -> ``factory("argument", **options)``."""
        _check_kind(kind)
        if not isinstance(spec, str):
            raise OptionTypeError(f"{kind} spec must be a string, not {type(spec).__name__}")
        name, sep, argument = spec.partition(":")
        name = name.strip()
        if not name:
            raise OptionError(f"empty {kind} spec {spec!r}; expected 'name' or 'name:argument'")
        factory = self.get(kind, name)
        args: tuple[Any, ...] = (argument,) if sep else ()
        try:
            inspect.signature(factory).bind(*args, **options)
        except TypeError as exc:
            given = ([f"argument {argument!r}"] if sep else []) + (
                [f"options {', '.join(sorted(options))}"] if options else []
            )
            raise OptionTypeError(
                f"{kind} {name!r} cannot be built with {' and '.join(given) or 'no arguments'}: "
                f"{exc}"
            ) from exc
        except ValueError:  # no signature available (builtin); let the call decide
            pass
        return factory(*args, **options)


_default: Registry | None = None
_default_lock = threading.Lock()


def default() -> Registry:
    """The process-wide registry (created on first call, entry points loaded on first use)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Registry()
    return _default


def get(kind: str, name: str) -> Factory:
    """:meth:`Registry.get` on the default registry."""
    return default().get(kind, name)


def create(kind: str, spec: str, **options: Any) -> Any:
    """:meth:`Registry.create` on the default registry."""
    return default().create(kind, spec, **options)


def names(kind: str) -> list[str]:
    """:meth:`Registry.names` on the default registry."""
    return default().names(kind)


def providers(kind: str | None = None) -> list[Provider]:
    """:meth:`Registry.providers` on the default registry."""
    return default().providers(kind)


def broken() -> list[BrokenPlugin]:
    """:meth:`Registry.broken` on the default registry."""
    return default().broken()


def describe(kind: str, name: str) -> str:
    """:meth:`Registry.describe` on the default registry."""
    return default().describe(kind, name)
