"""Shared fixtures: LFW (skipped with a reason when absent), the bundled default model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

try:
    from hypothesis import HealthCheck, settings

    # CI machines are slow and shared: no per-example deadline, no too-slow health check.
    settings.register_profile(
        "xfr", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "xfr"))
except ImportError:  # pragma: no cover - hypothesis is in the test extra
    pass


def _lfw_root() -> Path | None:
    from xfr.data.lfw import default_lfw_root

    root = os.environ.get("XFR_LFW")
    if root:
        return Path(root) if (Path(root) / "pairs.txt").exists() else None
    here = Path(__file__).resolve().parent.parent
    candidate = here.parent / "shared" / "data" / "lfw"
    if (candidate / "pairs.txt").exists():
        return candidate
    return default_lfw_root()


@pytest.fixture(scope="session")
def lfw_root() -> Path:
    """The LFW folder with pairs.txt; skips the test when it is not on this machine."""
    root = _lfw_root()
    if root is None:
        pytest.skip("LFW not found: set XFR_LFW or place it at ../shared/data/lfw")
    return root


@pytest.fixture(scope="session")
def default_verifier():
    """The bundled default model; skips when the package was built without it."""
    from xfr.api import default_model_path, load_verifier

    if not (default_model_path() / "config.json").exists():
        pytest.skip("the bundled default model is not in this build (xfr/models/default)")
    return load_verifier("default")


# The browser tests' fixtures (Chromium through Playwright, explained LFW pairs).
from browser_support import browser, explained_folder, watched  # noqa: E402, F401
