"""Benchmark fixtures: the bundled default model (skips when this build has none) and 64
faces to time it on."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def default_verifier():
    from xfr.api import default_model_path, load_verifier

    if not (default_model_path() / "config.json").exists():
        pytest.skip("the bundled default model is not in this build (xfr/models/default)")
    return load_verifier("default")


@pytest.fixture(scope="session")
def faces() -> torch.Tensor:
    """64 distinct faces: the astronaut under shifts and brightness changes (a public image,
    shipped in scikit-image; no LFW image is needed for timing)."""
    import skimage.data

    from xfr.api import prepare, to_tensor

    g = torch.Generator().manual_seed(0)
    base = to_tensor(prepare([skimage.data.astronaut()]))
    out = []
    for _ in range(64):
        dx, dy = torch.randint(-4, 5, (2,), generator=g).tolist()
        scale = 0.8 + 0.4 * torch.rand(1, generator=g).item()
        out.append((base[0].roll((dy, dx), dims=(1, 2)) * scale).clamp(0, 255))
    return torch.stack(out)
