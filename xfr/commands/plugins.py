"""``xfr plugins``: every registered kind and name with its plugin, package and version, the
plugins that failed to load and why, names provided twice, and the disabled plugins.

Exit status 0, unless ``--fail-on-broken`` is given and a plugin is broken or a name has two
providers (then 1). ``--json`` prints the same as one JSON object.
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


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def run(args: argparse.Namespace) -> int:
    reg = registry.default()
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
