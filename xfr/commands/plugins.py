"""``xfr plugins``: every registered kind and name with its plugin, package and version, the
plugins that failed to load and why, names provided twice, and the disabled plugins.

Exit status 0, unless ``--fail-on-broken`` is given and a plugin is broken or a name has two
providers (then 1). ``--json`` prints the same as one JSON object.

``--options NAME`` prints the options of the plugin(s) called NAME (``--kind`` narrows the
kind) from their declaration (docs/hooks.md, "Options"): name, type, default and help; a
plugin without a declaration is described by its factory's signature.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from xfr import registry

EXIT_BROKEN = 1

#: One-line help of the command (``xfr --help``).
HELP = "list the plugins, what they provide, and the broken ones"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plugins",
        help=HELP,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--kind", choices=registry.KINDS, help="list only this kind")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--options", metavar="NAME", default=None,
                        help="print the options of the plugin(s) called NAME: name, type, "
                             "default, help")
    parser.add_argument(
        "--fail-on-broken",
        action="store_true",
        help="exit with status 1 when a plugin failed to load or a name has two providers",
    )


def description(factory: Any) -> str:
    """The first paragraph of a factory's docstring (a class's or a function's), at most 90
    characters, or ``""``."""
    doc = getattr(factory, "__doc__", None) or ""
    lines = [line.strip() for line in doc.strip().splitlines()]
    first = " ".join(lines[: lines.index("")] if "" in lines else lines).replace("``", "")
    first = first.rstrip(".")
    return first if len(first) <= 90 else first[:87].rsplit(" ", 1)[0] + "..."


def missing_modules(factory: Any) -> list[str]:
    """The modules of the factory's ``requires`` attribute that cannot be imported here
    (found without importing them)."""
    import importlib.util

    missing = []
    for module in getattr(factory, "requires", ()) or ():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # e.g. sys.modules[module] is None
            found = False
        if not found:
            missing.append(module)
    return missing


def collect(reg: registry.Registry, kind: str | None = None) -> dict[str, Any]:
    """What ``xfr plugins`` shows, as plain data."""
    return {
        "providers": [
            {
                "kind": p.kind,
                "name": p.name,
                "plugin": p.plugin,
                "package": p.package,
                "version": p.version,
                "description": description(p.factory),
                "missing": missing_modules(p.factory),
                "install": getattr(p.factory, "install", None),
            }
            for p in reg.providers(kind)
        ],
        "conflicts": [
            {
                "kind": k,
                "name": n,
                "packages": [p.package for p in ps],
                "plugins": [p.plugin for p in ps],
                "advice": reg.conflict_advice(k, n, ps),
            }
            for k, n, ps in reg.conflicts(kind)
        ],
        "broken": [
            {"plugin": b.name, "package": b.package, "error": b.error} for b in reg.broken()
        ],
        "disabled": sorted(reg.disabled),
    }


def _signature_options(factory: Any) -> list[dict[str, Any]] | None:
    """The keyword parameters of an undeclared factory (``registry`` and the ``argument`` of
    a ``name:argument`` spec left out); ``None`` when it has no signature."""
    import inspect

    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    out = []
    for i, p in enumerate(params):
        if p.kind is p.VAR_KEYWORD:
            out.append({"name": f"**{p.name}", "type": "", "default": None,
                        "help": "further options, not declared"})
            continue
        if p.kind in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY):
            continue
        if p.name == registry.REGISTRY_PARAMETER or (i == 0 and p.name in ("argument",
                                                                            "source")):
            continue
        annotation = p.annotation
        out.append({
            "name": p.name,
            "type": "" if annotation is p.empty else (
                annotation if isinstance(annotation, str) else
                getattr(annotation, "__name__", str(annotation))),
            "default": None if p.default is p.empty else p.default,
            "help": "",
        })
    return out


def options_of(reg: registry.Registry, name: str, kind: str | None = None) -> list[dict[str, Any]]:
    """The options of every plugin called ``name`` (of ``kind``), from their declaration
    (:func:`xfr.options.describe`) or, without one, their factory's signature."""
    from xfr import options as declared
    from xfr.errors import UnknownNameError

    found = [p for p in reg.providers(kind) if p.name == name]
    if not found:
        kinds = f"{kind} " if kind else ""
        known = sorted({p.name for p in reg.providers(kind)})
        raise UnknownNameError(f"no {kinds}plugin called {name!r}; names: {', '.join(known)}")
    out = []
    for p in found:
        spec = declared.declaration(p.factory)
        if spec is not None:
            rows: list[dict[str, Any]] | None = [
                {"name": o.name, "type": o.type, "default": o.default, "help": o.help}
                for o in declared.describe(spec)]
        else:
            rows = _signature_options(p.factory)
        out.append({"kind": p.kind, "name": p.name, "package": p.package,
                    "plugin": p.plugin, "declared": spec is not None, "options": rows})
    return out


def print_options(found: list[dict[str, Any]]) -> None:
    """``xfr plugins --options NAME`` as text: one table per plugin."""
    for k, entry in enumerate(found):
        where = entry["package"] or "in process"
        print(("\n" if k else "") + f"{registry.KIND_WORDS[entry['kind']]} {entry['name']!r} "
              f"({where}, plugin {entry['plugin']}):")
        rows = entry["options"]
        if rows is None:
            print("  its factory has no signature to read options from")
            continue
        if not rows:
            print("  no options")
            continue
        table = [["OPTION", "TYPE", "DEFAULT", "HELP"]] + [
            [r["name"], r["type"], "" if r["name"].startswith("**") else repr(r["default"]),
             r["help"]] for r in rows]
        print("\n".join("  " + line for line in _table(table).splitlines()))
        if not entry["declared"]:
            print("  (from the factory's signature: the plugin declares no options)")


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def run(args: argparse.Namespace) -> int:
    reg = registry.default()
    if getattr(args, "options", None):
        found = options_of(reg, args.options, args.kind)
        if args.json:
            print(json.dumps(found, indent=2, default=repr))
        else:
            print_options(found)
        sys.stdout.flush()
        return 0
    data = collect(reg, args.kind)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        clashing = {(c["kind"], c["name"]) for c in data["conflicts"]}
        rows = [["KIND", "NAME", "PACKAGE", "VERSION", "PLUGIN"]]
        for p in data["providers"]:
            mark = " (!)" if (p["kind"], p["name"]) in clashing else ""
            if p["missing"]:
                mark += " (missing deps)"
            rows.append(
                [
                    p["kind"],
                    p["name"] + mark,
                    p["package"] or "(in process)",
                    p["version"] or "-",
                    p["plugin"],
                ]
            )
        if len(rows) == 1:
            print("no plugins provide anything")
        else:
            # Each plugin's row, then its one-line description under its name.
            table = _table(rows).splitlines()
            indent = " " * (len(table[0]) - len(table[0].lstrip()) + table[0].index("NAME"))
            print(table[0])
            for line, p in zip(table[1:], data["providers"], strict=True):
                print(line)
                if p["description"]:
                    print(f"{indent}  {p['description']}")
        for p in data["providers"]:
            if p["missing"]:
                how = f": {p['install']}" if p["install"] else ""
                print(f"\n{p['kind']} {p['name']!r} needs {', '.join(p['missing'])}, which "
                      f"cannot be imported here{how}")
        for c in data["conflicts"]:
            print(
                f"\n(!) {c['kind']} {c['name']!r} is provided by "
                + " and ".join(
                    f"{pk} (plugin {pl})"
                    for pk, pl in zip(c["packages"], c["plugins"], strict=True)
                )
                + f": using it fails; {c['advice']}"
            )
        if data["broken"]:
            print(f"\nbroken plugins ({len(data['broken'])}):")
            details = {b.name: b.details for b in reg.broken()}
            for b in data["broken"]:
                print(f"  {b['plugin']} (package {b['package'] or '?'}): {b['error']}")
                if getattr(args, "debug", False) and details.get(b["plugin"]):
                    print("    " + details[b["plugin"]].rstrip().replace("\n", "\n    "))
        if data["disabled"]:
            print(f"\ndisabled plugins: {', '.join(data['disabled'])}")
    sys.stdout.flush()
    if args.fail_on_broken and (data["broken"] or data["conflicts"]):
        return EXIT_BROKEN
    return 0
