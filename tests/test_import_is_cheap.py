"""``import xfr`` loads no plugin, builds no model, imports no torch and starts no thread;
discovery waits for the registry's first use. Checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

#: Subprocesses run from here, so that ``-m``/``-c`` import the installed xfr, not the checkout.
NEUTRAL_CWD = Path(__file__).resolve().parent

PROBE = r"""
import json, sys, threading
import xfr
after_import = sorted(sys.modules)
threads_after_import = threading.active_count()
hookimpl = xfr.hookimpl
from xfr import registry
after_registry = sorted(sys.modules)
print(json.dumps({
    "after_import": after_import,
    "threads": threads_after_import,
    "after_registry": after_registry,
    "default_created": registry._default is not None,
    "threads_after_registry": threading.active_count(),
    "hookimpl_module": type(hookimpl).__module__,
}))
"""

HEAVY = ("torch", "timm", "cv2", "xfr_plugins", "xfr.kernels", "xfr._kernels", "matplotlib",
         "ray")


def _heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


def _probe() -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=NEUTRAL_CWD,
    )
    return json.loads(out.stdout)


def test_import_xfr_imports_no_torch_no_plugin_and_starts_no_thread() -> None:
    info = _probe()
    assert _heavy(info["after_import"]) == []
    assert "xfr.registry" not in info["after_import"]
    assert info["threads"] == 1
    assert info["hookimpl_module"].startswith("pluggy")


def test_importing_the_registry_discovers_nothing_until_first_use() -> None:
    info = _probe()
    assert "xfr.registry" in info["after_registry"]
    assert _heavy(info["after_registry"]) == []
    assert info["default_created"] is False
    assert info["threads_after_registry"] == 1


ENGINE_PROBE = r"""
import json, sys
import xfr.batch, xfr.engines
from xfr import cli
for name in ("explain", "evaluate", "sanity"):
    cli.build_parser(only=name)
print(json.dumps(sorted(m for m in sys.modules if m == "ray" or m.startswith("ray."))))
"""


def test_the_ray_engine_is_imported_only_when_asked_for() -> None:
    """The batch driver, the engines module and the parsers of the commands that take
    ``--engine`` import no Ray (``xfr[ray]`` is optional)."""
    out = subprocess.run([sys.executable, "-c", ENGINE_PROBE], capture_output=True, text=True,
                         check=True, timeout=120, cwd=NEUTRAL_CWD)
    assert json.loads(out.stdout) == []
