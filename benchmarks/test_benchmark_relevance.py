"""The compiled element-wise steps of relevance propagation against the torch code (issue 19).

``xfr.kernels.relevance`` does the guarded division and the alpha-beta coefficients of every
LRP rule in one pass over memory each, where torch takes six, and the float64 generators
compute a batch's chunks side by side; the results are the same bit for bit. Side by side in
one run, alternating (so both meet the same load on a shared machine):

- the two steps alone on a block's activations (4 faces x 197 tokens x 512, float64);
- the paper's explainer per pair (the default model, CPU) with the ViT-LRP and No-Grad ViT-LRP
  generators, one pair at a time and 32 pairs in one batch, now (compiled steps, a batch's
  chunks side by side, one per torch thread) against before (the torch steps, one chunk at a
  time on all threads: ``use_compiled(False)`` and the generator option ``workers=1``),
  heatmaps and choices asserted equal;
- the maps of ``grad-rollout`` (the default explainer's generator), chunks side by side or not.

Reports the medians and how many times faster now is. Run:

    pytest benchmarks/test_benchmark_relevance.py --benchmark-enable -s

With ``--benchmark-disable`` (the default) each runs one round, as a test of equal results.
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
ROUNDS = 5  # alternating rounds of the explainer benchmarks (medians)


def _rounds(benchmark: Any, rounds: int) -> int:
    """``rounds`` when timing, one when the run only checks results (``--benchmark-disable``)."""
    return 1 if getattr(benchmark, "disabled", False) else rounds


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
        med.update(_alternating({"torch": torch_only, "compiled": steps}, _rounds(benchmark, 20)))

    benchmark.group = "relevance steps, 4 x 197 x 512 float64"
    benchmark.pedantic(both, rounds=1, iterations=1)
    ratio = med["torch"] / med["compiled"]
    benchmark.extra_info.update(torch_ms=1e3 * med["torch"], compiled_ms=1e3 * med["compiled"],
                                compiled_vs_torch=ratio, threads=torch.get_num_threads())
    print(f"\nsafe_divide + alpha_beta_shares on 4 x 197 x 512 float64, "
          f"{torch.get_num_threads()} threads: torch {1e3 * med['torch']:.2f} ms, compiled "
          f"{1e3 * med['compiled']:.2f} ms: {ratio:.1f}x")


def _before(generator: str) -> dict[str, Any]:
    """The paper explainer's options that emulate the code before these changes: one chunk at
    a time on all torch threads (the torch steps are :func:`use_compiled`'s ``False``)."""
    return {"generator": generator, "generator_options": {"workers": 1}}


@pytest.mark.parametrize("generator", ["nograd-lrp", "vit-lrp"])
@pytest.mark.parametrize("pairs", [1, PAIRS])
def test_paper_explainer_per_pair_now_vs_before(benchmark: Any, default_verifier: Any,
                                                faces: torch.Tensor, generator: str,
                                                pairs: int) -> None:
    """Now (compiled steps, chunks side by side) against before (torch steps, one chunk at a
    time), 8 pairs one at a time or 32 in one batch."""
    now = registry.create("explainer", "paper", generator=generator)
    before = registry.create("explainer", "paper", **_before(generator))
    count = 8 if pairs == 1 else PAIRS
    probes, galleries = faces[:count], faces[PAIRS : PAIRS + count]

    def explain(explainer: Any) -> list[Any]:
        return [e for s in range(0, count, pairs)
                for e in explainer.explain_pairs(default_verifier, probes[s : s + pairs],
                                                 galleries[s : s + pairs])]

    def run_before() -> list[Any]:
        with use_compiled(False):
            return explain(before)

    fast, slow = explain(now), run_before()
    for a, b in zip(fast, slow, strict=True):
        assert a.strategy == b.strategy
        if a.heatmaps is not None or b.heatmaps is not None:
            np.testing.assert_array_equal(a.heatmaps, b.heatmaps)
    med: dict[str, float] = {}

    def both() -> None:
        med.update(_alternating({"before": run_before, "now": lambda: explain(now)},
                               _rounds(benchmark, ROUNDS)))

    benchmark.group = f"paper explainer, {'one pair at a time' if pairs == 1 else 'batches'}"
    benchmark.pedantic(both, rounds=1, iterations=1)
    ms = {k: 1e3 * v / count for k, v in med.items()}
    ratio = ms["before"] / ms["now"]
    benchmark.extra_info.update(before_ms_per_pair=ms["before"], now_ms_per_pair=ms["now"],
                                now_vs_before=ratio)
    print(f"\npaper explainer ({generator}), {count} pairs "
          f"{'one at a time' if pairs == 1 else 'in one batch'}, {torch.get_num_threads()} "
          f"threads, medians of {_rounds(benchmark, ROUNDS)}: before {ms['before']:.0f} ms per "
          f"pair, now {ms['now']:.0f} ms per pair: {ratio:.2f}x")


def test_default_generator_maps_now_vs_before(benchmark: Any, default_verifier: Any,
                                              faces: torch.Tensor) -> None:
    """``grad-rollout`` (the default explainer's generator, float64) on 64 faces: chunks side
    by side against one chunk at a time (it uses no LRP step)."""
    now = registry.create("attention", "grad-rollout")
    before = registry.create("attention", "grad-rollout", workers=1)
    assert torch.equal(now(default_verifier, faces), before(default_verifier, faces))
    med: dict[str, float] = {}

    def both() -> None:
        med.update(_alternating({"before": lambda: before(default_verifier, faces),
                                 "now": lambda: now(default_verifier, faces)},
                                _rounds(benchmark, ROUNDS)))

    benchmark.group = "grad-rollout maps, 64 faces"
    benchmark.pedantic(both, rounds=1, iterations=1)
    ms = {k: 1e3 * v / len(faces) for k, v in med.items()}
    ratio = ms["before"] / ms["now"]
    benchmark.extra_info.update(before_ms_per_face=ms["before"], now_ms_per_face=ms["now"],
                                now_vs_before=ratio)
    print(f"\ngrad-rollout maps of {len(faces)} faces, {torch.get_num_threads()} threads, "
          f"medians of {_rounds(benchmark, ROUNDS)}: before {ms['before']:.1f} ms per face, now "
          f"{ms['now']:.1f} ms per face: {ratio:.2f}x")
