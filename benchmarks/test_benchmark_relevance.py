"""The compiled element-wise steps of relevance propagation against the torch code (issue 19).

``xfr.kernels.relevance`` does the guarded division and the alpha-beta coefficients of every
LRP rule in one pass over memory each, where torch takes six; the results are the same bit for
bit. Side by side in one run, alternating (so both meet the same load on a shared machine):

- the two steps alone on a block's activations (4 faces x 197 tokens x 512, float64);
- the paper's explainer per pair (the default model, 32 pairs in one batch, CPU) with the
  ViT-LRP and No-Grad ViT-LRP generators, heatmaps and choices asserted equal.

Reports the medians and how many times faster the compiled steps make each. Run:

    pytest benchmarks/test_benchmark_relevance.py --benchmark-enable -s

With ``--benchmark-disable`` (the default) each runs once as a test of equal results.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from xfr import registry
from xfr.kernels.relevance import alpha_beta_shares, safe_divide, use_compiled

PAIRS = 32


def _alternating(runs: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Median seconds of each run, the runs taking turns round by round."""
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def test_relevance_steps_compiled_vs_torch(benchmark: Any) -> None:
    g = torch.Generator().manual_seed(0)
    r, zs = (torch.randn(4, 197, 512, dtype=torch.float64, generator=g) for _ in range(2))
    za = zs.abs() + torch.rand(4, 197, 512, dtype=torch.float64, generator=g)

    def steps() -> tuple[torch.Tensor, ...]:
        return (safe_divide(r, zs), *alpha_beta_shares(r, zs, za, 0.5))

    with use_compiled(False):
        want = steps()
    got = steps()
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)

    def torch_only() -> None:
        with use_compiled(False):
            steps()

    med: dict[str, float] = {}

    def both() -> None:
        med.update(_alternating({"torch": torch_only, "compiled": steps}, 20))

    benchmark.group = "relevance steps, 4 x 197 x 512 float64"
    benchmark.pedantic(both, rounds=1, iterations=1)
    ratio = med["torch"] / med["compiled"]
    benchmark.extra_info.update(torch_ms=1e3 * med["torch"], compiled_ms=1e3 * med["compiled"],
                                compiled_vs_torch=ratio, threads=torch.get_num_threads())
    print(f"\nsafe_divide + alpha_beta_shares on 4 x 197 x 512 float64, "
          f"{torch.get_num_threads()} threads: torch {1e3 * med['torch']:.2f} ms, compiled "
          f"{1e3 * med['compiled']:.2f} ms: {ratio:.1f}x")


@pytest.fixture(scope="module")
def faces() -> torch.Tensor:
    """64 faces: a public portrait under shifts and brightness changes (as the stage split's
    benchmark; no LFW image is needed for timing)."""
    import skimage.data

    from xfr.api import prepare, to_tensor

    g = torch.Generator().manual_seed(0)
    base = to_tensor(prepare([skimage.data.astronaut()]))
    out = []
    for _ in range(2 * PAIRS):
        dx, dy = torch.randint(-4, 5, (2,), generator=g).tolist()
        scale = 0.8 + 0.4 * torch.rand(1, generator=g).item()
        out.append((base[0].roll((dy, dx), dims=(1, 2)) * scale).clamp(0, 255))
    return torch.stack(out)


@pytest.mark.parametrize("generator", ["nograd-lrp", "vit-lrp"])
def test_paper_explainer_per_pair_compiled_vs_torch(benchmark: Any, default_verifier: Any,
                                                   faces: torch.Tensor, generator: str) -> None:
    explainer = registry.create("explainer", "paper", generator=generator)
    probes, galleries = faces[:PAIRS], faces[PAIRS:]

    def explain() -> list[Any]:
        return explainer.explain_pairs(default_verifier, probes, galleries)

    def torch_only() -> list[Any]:
        with use_compiled(False):
            return explain()

    compiled, plain = explain(), torch_only()
    for a, b in zip(compiled, plain, strict=True):
        assert a.strategy == b.strategy
        if a.heatmaps is not None or b.heatmaps is not None:
            np.testing.assert_array_equal(a.heatmaps, b.heatmaps)
    med: dict[str, float] = {}

    def both() -> None:
        med.update(_alternating({"torch": torch_only, "compiled": explain}, 3))

    benchmark.group = f"paper explainer, {PAIRS} pairs in one batch"
    benchmark.pedantic(both, rounds=1, iterations=1)
    ms = {k: 1e3 * v / PAIRS for k, v in med.items()}
    ratio = ms["torch"] / ms["compiled"]
    benchmark.extra_info.update(torch_ms_per_pair=ms["torch"],
                                compiled_ms_per_pair=ms["compiled"], compiled_vs_torch=ratio)
    print(f"\npaper explainer ({generator}), {PAIRS} pairs in one batch, "
          f"{torch.get_num_threads()} threads, medians of 3: torch steps {ms['torch']:.0f} ms "
          f"per pair, compiled steps {ms['compiled']:.0f} ms per pair: {ratio:.2f}x")
