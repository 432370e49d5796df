"""Benchmark fixtures: the bundled default model (skips when this build has none)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def default_verifier():
    from xfr.api import default_model_path, load_verifier

    if not (default_model_path() / "config.json").exists():
        pytest.skip("the bundled default model is not in this build (xfr/models/default)")
    return load_verifier("default")
