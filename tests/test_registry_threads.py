"""Discovery is lazy and guarded by a lock: concurrent first uses load each plugin once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from plugin_dists import UNRELATED_BUILTINS, DistFactory, dist_factory

from xfr import registry
from xfr.registry import Registry

SLOW_PLUGIN = """
    import time
    import xfr

    IMPORTS = globals().setdefault("IMPORTS", [])
    IMPORTS.append(1)
    CALLS = []
    time.sleep(0.05)  # widen the window in which a second thread could start loading too

    class Mask:
        name = "slow"

    @xfr.hookimpl
    def xfr_mask_strategies():
        CALLS.append(1)
        time.sleep(0.05)
        return {"slow": Mask}
"""


@pytest.fixture
def dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DistFactory]:
    yield from dist_factory(tmp_path, monkeypatch)


def test_concurrent_first_uses_load_and_call_each_plugin_once(dists: DistFactory) -> None:
    import importlib
    import sys

    dists.make_dist("xfr-slow", {"slow": "slow"}, {"slow": SLOW_PLUGIN})
    reg = Registry(disabled=UNRELATED_BUILTINS)
    assert dists.module("slow") not in sys.modules  # nothing loaded before first use
    n = 12
    barrier = threading.Barrier(n)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def use() -> None:
        try:
            barrier.wait()
            results.append(reg.names("mask"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=use) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert len(results) == n
    assert all(r == results[0] for r in results) and "slow" in results[0]
    module = importlib.import_module(dists.module("slow"))
    assert module.IMPORTS == [1]
    assert module.CALLS == [1]


def test_concurrent_calls_of_default_return_one_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_default", None)
    n = 12
    barrier = threading.Barrier(n)
    seen: list[Registry] = []

    def get() -> None:
        barrier.wait()
        seen.append(registry.default())

    threads = [threading.Thread(target=get) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(seen) == n and all(r is seen[0] for r in seen)
