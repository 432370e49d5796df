"""Real, tiny installed distributions for the registry tests.

``make_dist`` writes plugin modules and a ``<name>-<version>.dist-info`` folder (``METADATA``
and ``entry_points.txt`` with an ``[xfr]`` section) into a folder that the test puts on
``sys.path``: ``importlib.metadata`` then finds them exactly as it finds a pip-installed
package, so the registry loads them through the real entry-point machinery.
"""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest


class DistFactory:
    def __init__(self, site: Path) -> None:
        self.site = site
        self.prefix = f"xfrtest_{uuid.uuid4().hex[:10]}_"

    def module(self, name: str) -> str:
        """A module name unique to this test (so ``sys.modules`` never serves a stale one)."""
        return self.prefix + name

    def make_dist(
        self,
        dist: str,
        entry_points: Mapping[str, str],
        modules: Mapping[str, str],
        version: str = "1.0",
    ) -> None:
        """Write ``modules`` (``{short name: source}``, named with :meth:`module`) and the
        metadata of the distribution ``dist`` whose ``xfr`` entry points map a plugin name to a
        short module name."""
        for short, source in modules.items():
            (self.site / f"{self.module(short)}.py").write_text(textwrap.dedent(source))
        info = self.site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = "".join(f"{ep} = {self.module(mod)}\n" for ep, mod in entry_points.items())
        (info / "entry_points.txt").write_text(f"[xfr]\n{lines}")


def dist_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DistFactory]:
    """Body of a ``dists`` fixture: ``yield from dist_factory(tmp_path, monkeypatch)``."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))  # also invalidates the import caches
    monkeypatch.delenv("XFR_DISABLE_PLUGINS", raising=False)
    factory = DistFactory(site)
    yield factory
    for name in [m for m in sys.modules if m.startswith(factory.prefix)]:
        del sys.modules[name]


#: Built-in plugins that the registry tests do not need (they are other engineers' work and
#: may import heavy modules); disabling them keeps the tests about the registry alone.
UNRELATED_BUILTINS = ("verifiers", "attention", "explainers")


def mask_plugin_source(name: str) -> str:
    """A plugin module providing one mask strategy ``name`` (factory: a small class)."""
    return f"""
        import xfr

        class Mask:
            name = {name!r}
            decisions = frozenset({{"positive", "negative"}})

        @xfr.hookimpl
        def xfr_mask_strategies():
            return {{{name!r}: Mask}}
    """
