"""Cost of explaining one positive LFW pair with the default model on the CPU (issues 7, 18).

The paper's explainer against the perturbation baselines MinPlus, AVG, RISE and LIME (paper
Sec. 4) and the similarity explainers xSSAB, CorrRISE and BiLRP: model passes (images through
the ViT: every embedding and every attention pass; for the similarity explainers their own
count of forward and backward/relevance passes, ``notes["model_passes"]``) and wall time per
explained pair, and their ratios to the paper's explainer, all in one run. Expected: the
paper's method and xSSAB need a handful of passes, BiLRP one relevance pass per embedding
coordinate and face (262 on the bundled model), MinPlus hundreds to a few thousand, CorrRISE
1,002 (2 x 500 masks), RISE 20,000 (2 x 10,000 masks).

Run: ``pytest benchmarks/test_benchmark_explainers.py --benchmark-enable -s``. It skips when
the bundled default model or LFW is absent. The baselines run with their documented defaults,
so RISE takes minutes on two cores.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import torch
from xfr_plugins.explainers.relevance import MODEL_PASSES as RELEVANCE_PASSES

from xfr import registry

BASELINES = ("minplus", "avg", "rise", "lime")
SIMILARITY = ("xssab", "corrrise", "bilrp")
METHODS = ("relevance", "paper", *BASELINES, *SIMILARITY)
_RESULTS: dict[str, dict[str, float]] = {}


class _PassCounter:
    """Counts images through the model: ViT ``patch_embed`` passes, else ``embed`` calls."""

    def __init__(self, verifier: Any) -> None:
        self.images = 0
        self.verifier = verifier
        backbone = getattr(verifier, "backbone", None)
        stem = getattr(backbone, "patch_embed", None)
        if isinstance(stem, torch.nn.Module):
            self._handle = stem.register_forward_hook(self._hook)
            self._orig_embed = None
        else:  # a black box: count what goes through embed
            self._handle = None
            self._orig_embed = verifier.embed

            def embed(images: torch.Tensor) -> torch.Tensor:
                self.images += int(images.shape[0])
                return self._orig_embed(images)

            verifier.embed = embed

    def _hook(self, _module: Any, inputs: tuple[Any, ...], _output: Any) -> None:
        self.images += int(inputs[0].shape[0])

    def __deepcopy__(self, memo: dict[int, Any]) -> _PassCounter:
        # a float64 twin of the model (copy.deepcopy, relevance generators) keeps its hook:
        # the twin's passes are counted here too, not in a copy of the counter
        return self

    def close(self) -> None:
        if self._handle is not None:
            self._handle.remove()
        if self._orig_embed is not None:
            self.verifier.embed = self._orig_embed


@pytest.fixture(scope="module")
def accepted_pair() -> tuple[Any, torch.Tensor, torch.Tensor, str]:
    """The default verifier and the first fold-10 positive LFW pair it accepts."""
    from xfr.api import default_model_path, load_verifier, prepare, to_tensor
    from xfr.data.lfw import default_lfw_root, image_folder, read_pairs

    if not (default_model_path() / "config.json").exists():
        pytest.skip("the bundled default model is not in this build (xfr/models/default)")
    root = default_lfw_root()
    if root is None:
        pytest.skip("LFW not found: set XFR_LFW or place it at ../shared/data/lfw")
    verifier = load_verifier("default")
    size = int(getattr(verifier, "input_size", 112))
    pairs = [p for p in read_pairs(root / "pairs.txt", image_folder(root)) if p.same]
    pairs = [p for p in pairs if p.fold == 10] or pairs
    for p in pairs[:50]:
        probe = to_tensor(prepare([p.probe], size))
        gallery = to_tensor(prepare([p.gallery], size))
        with torch.no_grad():
            d = float(verifier.distance(verifier.embed(probe), verifier.embed(gallery))[0])
        if d < float(verifier.threshold):
            return verifier, probe, gallery, f"{p.probe.name} / {p.gallery.name}"
    pytest.skip("the default model accepts none of the first 50 positive pairs")


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_cost_per_explained_positive_pair(benchmark: Any, method: str, accepted_pair) -> None:
    verifier, probe, gallery, name = accepted_pair
    explainer = registry.create("explainer", method)
    counter = _PassCounter(verifier)
    seconds: list[float] = []

    def run() -> Any:
        t = time.perf_counter()
        out = explainer.explain_pairs(verifier, probe, gallery)
        seconds.append(time.perf_counter() - t)
        return out

    try:
        (result,) = benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    finally:
        counter.close()
    passes = counter.images / len(seconds)
    assert result.decision == "positive" and result.heatmaps is not None
    if method == "relevance":
        # images through the ViT (2 embeddings, 2 relevance forwards in the generator's float64
        # twin), as the counter sees them
        assert result.notes["model_passes"] == passes
    elif method in BASELINES:
        # the baselines' own count is exactly what went through the model
        assert result.notes["verifier_calls"] == passes
    elif method in SIMILARITY:
        # their own count adds the backward (relevance) passes, which the stem never sees, to
        # the forward passes (BiLRP's run in a float64 copy of the model, which the counter
        # does not watch)
        assert result.notes["model_passes"] >= passes
        passes = result.notes["model_passes"]
        assert result.notes["seconds_per_pair"] <= min(seconds)
    benchmark.extra_info.update(
        {"pair": name, "model_passes": passes, "seconds": min(seconds), "device": "cpu"}
    )
    _RESULTS[method] = {"passes": passes, "seconds": min(seconds)}


@pytest.mark.slow
def test_ratios_to_the_papers_explainer() -> None:
    if set(_RESULTS) != set(METHODS):
        pytest.skip("needs every method's cost from this run")
    base = _RESULTS["paper"]
    lines = [f"{'method':8s} {'passes':>8s} {'x paper':>8s} {'seconds':>9s} {'x paper':>8s}"]
    for m in METHODS:
        r = _RESULTS[m]
        lines.append(
            f"{m:8s} {r['passes']:8.0f} {r['passes'] / base['passes']:8.1f} "
            f"{r['seconds']:9.2f} {r['seconds'] / base['seconds']:8.1f}"
        )
    print("\n" + "\n".join(lines))
    assert base["passes"] < 20  # a handful of passes
    assert base["passes"] < _RESULTS["lime"]["passes"] < _RESULTS["rise"]["passes"]
    assert base["passes"] < _RESULTS["minplus"]["passes"] < _RESULTS["rise"]["passes"]
    assert _RESULTS["rise"]["passes"] == 2 * 10000 + 2
    assert _RESULTS["relevance"]["passes"] == RELEVANCE_PASSES
    assert _RESULTS["xssab"]["passes"] == 8
    assert _RESULTS["corrrise"]["passes"] == 2 * 500 + 2
    assert _RESULTS["bilrp"]["passes"] == 4 + 2 + 2 * 128  # one chunk of 128 coordinates
