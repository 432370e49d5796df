"""The whole explanation on a CUDA GPU equals the CPU one (issue 19, "GPU path").

The model passes (embeddings, attention maps, masked faces) run on the verifier's device; the
maps and masks (112 x 112 per face) come to the host for the kernels and the mask strategies'
NumPy interface (docs/design.md, "Devices"). On the GPU the matrix products round differently,
so the maps may differ in the last float32 digits: the decisions, the chosen strategies and the
heatmaps must still agree. Skips without a CUDA device (this project's CI has none); run on a
GPU machine with ``pytest tests/test_explain_cuda.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xfr import registry

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

EXPLAINERS = [
    ("relevance", {}),
    ("paper", {"generator": "nograd-lrp"}),
    ("paper", {"generator": "vit-lrp"}),
    ("paper", {"generator": "rollout"}),
]


@pytest.fixture(scope="module")
def faces() -> torch.Tensor:
    """Eight distinct faces: scikit-image's astronaut, shifted and brightened (public image)."""
    import skimage.data

    from xfr.api import prepare, to_tensor

    base = to_tensor(prepare([skimage.data.astronaut()]))[0]
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(8):
        dx, dy = torch.randint(-6, 7, (2,), generator=g).tolist()
        scale = 0.7 + 0.6 * torch.rand(1, generator=g).item()
        out.append((base.roll((dy, dx), dims=(1, 2)) * scale).clamp(0, 255))
    return torch.stack(out)


@pytest.mark.parametrize(("method", "options"), EXPLAINERS,
                         ids=[f"{m}-{o.get('generator', 'default')}" for m, o in EXPLAINERS])
def test_the_whole_explanation_on_cuda_equals_the_cpu_one(
        method: str, options: dict, faces: torch.Tensor) -> None:
    from xfr.api import load_verifier

    cpu = load_verifier("default", device="cpu")
    gpu = load_verifier("default", device="cuda")
    assert next(gpu.backbone.parameters()).device.type == "cuda"
    explainer = registry.create("explainer", method, **options)
    probes, galleries = faces[:4], faces[4:]
    expected = explainer.explain_pairs(cpu, probes, galleries)
    got = explainer.explain_pairs(gpu, probes.cuda(), galleries.cuda())
    for e, g in zip(expected, got, strict=True):
        near_threshold = abs(e.distance - float(cpu.threshold)) < 1e-4
        if not near_threshold:
            assert g.decision == e.decision
            assert g.strategy == e.strategy
        assert g.distance == pytest.approx(e.distance, abs=1e-4)
        if e.heatmaps is not None and not near_threshold:
            assert g.heatmaps is not None
            np.testing.assert_allclose(g.heatmaps, e.heatmaps, atol=2e-2)
