"""Time per explained pair of the paper's explainer, split by stage (issues 6 and 19).

The default model on the CPU, the three generators of the paper's Table 1, at batch 1 and 32
pairs: how much of the time goes to the model
passes (embedding, attention maps, masked faces) and how much to the compiled kernels (Otsu,
smoothing). The stage split comes from ``Explanation.notes["seconds_per_pair"]``.

Run: ``pytest benchmarks/test_benchmark_explain_stages.py --benchmark-enable -s``. Skips when
the bundled default model is absent. With ``--benchmark-disable`` it still checks that every
stage was timed and that the batched results equal the single ones.
"""

from __future__ import annotations

import numpy as np
import pytest

from xfr import registry

STAGES = ("embed", "attention", "otsu", "masked_embed", "select", "smooth")


@pytest.mark.parametrize("batch", [1, 32])
@pytest.mark.parametrize("generator", ["nograd-lrp", "vit-lrp", "rollout"])
def test_paper_explainer_time_per_pair_by_stage(benchmark, default_verifier, faces, batch,
                                                generator):
    explainer = registry.create("explainer", "paper", generator=generator)
    probes, galleries = faces[:batch], faces[32 : 32 + batch]
    results = benchmark.pedantic(
        explainer.explain_pairs, args=(default_verifier, probes, galleries), rounds=1,
        iterations=1, warmup_rounds=1)
    split = results[0].notes["seconds_per_pair"]
    assert set(STAGES) <= set(split)
    total = sum(split.values())
    benchmark.extra_info.update({f"{k}_s_per_pair": v for k, v in split.items()})
    model = split["embed"] + split["attention"] + split["masked_embed"]
    kernels = split["otsu"] + split["smooth"]
    benchmark.extra_info["model_share"] = model / total
    benchmark.extra_info["kernel_share"] = kernels / total
    print(f"\n{generator}, batch {batch}: {total:.3f} s per pair; model passes "
          f"{100 * model / total:.1f} %, kernels {100 * kernels / total:.2f} %; " +
          ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in split.items()))
    if batch > 1:
        alone = explainer.explain_pairs(default_verifier, probes[:1], galleries[:1])[0]
        assert alone.strategy == results[0].strategy
        if alone.heatmaps is not None:
            np.testing.assert_allclose(alone.heatmaps, results[0].heatmaps, atol=1e-4)
