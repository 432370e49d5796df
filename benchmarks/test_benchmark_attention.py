"""Attention-map time per image of every generator, on the CPU (issue 4, "Benchmarks").

Two models: a small face ViT (P8S8, dim 192, depth 6, 3 heads, MLP 768) and the paper's full
P8S8 shape (dim 512, depth 20, 8 heads, MLP 2048), at batch 1 and 32, target ``embedding``
(the models are headless; the paper's identity head adds one matrix-vector product). Each
result carries ``extra_info["seconds_per_image"]``. Run with::

    pytest benchmarks/test_benchmark_attention.py --benchmark-enable            # everything
    pytest benchmarks/test_benchmark_attention.py --benchmark-enable -m "not slow"  # small only

The full-shape cases are marked ``slow`` and run a single round: on 2 loaded CPU cores the
LRP generators take tens of seconds per image at that size.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from xfr_plugins.verifiers.face_vit import FaceViTVerifier

from xfr import registry

GENERATORS = ["attention", "rollout", "vit-lrp", "nograd-lrp", "grad-rollout"]
MODELS: dict[str, dict[str, Any]] = {
    "small": {"patch": "p8s8", "dim": 192, "depth": 6, "heads": 3, "mlp_dim": 768},
    "full-p8s8": {"patch": "p8s8"},  # FaceViTConfig's defaults are the paper's shape
}
_cache: dict[str, FaceViTVerifier] = {}


def _verifier(model: str) -> FaceViTVerifier:
    if model not in _cache:
        torch.manual_seed(0)
        _cache[model] = FaceViTVerifier.load(None, **MODELS[model])
    return _cache[model]


@pytest.mark.parametrize("batch", [1, 32])
@pytest.mark.parametrize("name", GENERATORS)
@pytest.mark.parametrize(
    "model", ["small", pytest.param("full-p8s8", marks=pytest.mark.slow)]
)
def test_attention_map_time_per_image(benchmark, model: str, name: str, batch: int) -> None:
    verifier = _verifier(model)
    generator = registry.create("attention", name)
    images = torch.rand(batch, 3, 112, 112, generator=torch.Generator().manual_seed(0)) * 255
    full = model != "small"
    benchmark.extra_info.update(model=model, generator=name, batch=batch,
                                threads=torch.get_num_threads())
    maps = benchmark.pedantic(
        generator, args=(verifier, images), kwargs={"target": "embedding"},
        rounds=1 if full else (3 if batch == 1 else 2), iterations=1,
        warmup_rounds=0 if full or batch > 1 else 1,
    )
    assert maps.shape == (batch, 112, 112) and torch.isfinite(maps).all()
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        benchmark.extra_info["seconds_per_image"] = stats.stats.mean / batch
