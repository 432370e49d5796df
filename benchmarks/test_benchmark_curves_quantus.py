"""xfr's deletion curves next to Quantus 0.6 ``PixelFlipping`` on the same work (issue 19).

The same model (the bundled default), the same 50 held-out LFW pairs (the first 50 of fold 9,
aligned by ``xfr.api.prepare``) and the same heatmaps (the default ``relevance`` explainer's
probe maps); both sides delete pixels in descending heatmap order, replace them by zero (all
channels) and score the probe against its gallery, 1/8 of the pixels per step (Quantus needs a
step that divides the image). Only the probe is perturbed, as for a positive pair.

Quantus scores classifiers, so a face pair needs a hand-made wrapper (:class:`PairDistance`): a
"model" whose class ``k`` score is the distance of its input face to gallery ``k``, the pair's
index as the label, ``softmax=False``, and the face given as its three channel planes stacked
into one ``(1, 3H, W)`` plane with the heatmap tiled alike: Quantus checks that its step
divides the pixels of one channel but flips the entries of all channels, so a step of
``3 * H * W / 8`` entries is refused for a ``(3, H, W)`` face. ``perturb_baseline=0.0`` is
zero fill; Quantus's ``"black"`` is each image's own minimum instead (zero only for a face
with a pure black pixel).

The test first checks that Quantus's curve equals xfr's (``curve_distances``, steps 1..8) at
every step where no tie of heatmap values straddles the step (there xfr breaks ties at random,
Quantus by ``argsort``), then times both, alternating, and reports how many times faster xfr is
(Quantus's median / xfr's) in two settings: from the faces alone (both compute the same 8
points and embed the unperturbed faces they need: the galleries), and with the
pairs' embeddings known from verification, as ``xfr evaluate`` calls ``curve_distances``
(xfr is given the probes' and galleries' embeddings, the wrapper the galleries'). Run:

    pytest benchmarks/test_benchmark_curves_quantus.py --benchmark-enable -s

Skips when Quantus (``pip install -e ".[bench]"``), LFW or the default model is absent.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

try:
    import quantus
except ImportError as exc:  # absent, or a dependency of it broken
    pytest.skip(f"Quantus is a benchmark-only dependency (pip install -e '.[bench]'): {exc}",
                allow_module_level=True)
if not quantus.__version__.startswith("0.6."):
    pytest.skip(f"the Quantus wrapper is written for Quantus 0.6, found {quantus.__version__}",
                allow_module_level=True)

from xfr.evaluation.deletion import curve_distances, step_counts, step_fractions  # noqa: E402

PAIRS = 50
STEPS = 8  # 12544 pixels of a 112x112 face / 8 = 1568 per step
ROUNDS = 5


@pytest.fixture(scope="module")
def lfw_pairs() -> list[Any]:
    from xfr.data.lfw import default_lfw_root, read_pairs

    root = default_lfw_root()
    if root is None:
        pytest.skip("LFW not found: set XFR_LFW or place it at ../shared/data/lfw")
    held_out = [p for p in read_pairs(root / "pairs.txt") if p.fold == 9]
    return held_out[:PAIRS]


@pytest.fixture(scope="module")
def work(default_verifier: Any, lfw_pairs: list[Any]) -> dict[str, Any]:
    """Aligned faces and the default explainer's probe heatmaps of the 50 pairs."""
    from xfr import registry
    from xfr.api import prepare, to_tensor

    with warnings.catch_warnings():  # the aligner's "2 faces found; using the largest"
        warnings.simplefilter("ignore")
        probes = to_tensor(prepare([str(p.probe) for p in lfw_pairs]))
        galleries = to_tensor(prepare([str(p.gallery) for p in lfw_pairs]))
    explained = registry.create("explainer", "relevance").explain_pairs(
        default_verifier, probes, galleries)
    maps = np.stack([e.heatmaps[0] for e in explained]).astype(np.float32)
    return {"probes": probes, "galleries": galleries, "maps": maps}


class PairDistance(torch.nn.Module):
    """What Quantus needs to score a face pair: a classifier-shaped model.

    Input: faces as stacked channel planes ``(B, 1, 3H, W)``. Output ``(B, N)``: the distance
    of each face to each of the ``N`` galleries; with the pair's index as its label, Quantus
    reads the distance of the perturbed probe to its own gallery.
    """

    def __init__(self, verifier: Any, galleries: torch.Tensor,
                 embedded: torch.Tensor | None = None) -> None:
        super().__init__()
        self.verifier = verifier
        self.size = galleries.shape[-1]
        self.gallery = verifier.embed(galleries) if embedded is None else embedded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        faces = x.reshape(x.shape[0], 3, self.size, self.size)
        emb = self.verifier.embed(faces)
        d: torch.Tensor = self.verifier.distance(emb[:, None], self.gallery[None])
        return d


def planes(faces: torch.Tensor) -> np.ndarray:
    """``(N, 3, H, W)`` faces as ``(N, 1, 3H, W)`` float32 channel planes (NumPy)."""
    n, c, h, w = faces.shape
    return np.ascontiguousarray(faces.numpy(), dtype=np.float32).reshape(n, 1, c * h, w)


def run_xfr(verifier: Any, work: dict[str, Any], known: bool = False) -> np.ndarray:
    """xfr's deletion distances ``(N, STEPS)`` at Quantus's points: 1/8 .. 8/8 of the pixels
    deleted (no unperturbed step, which Quantus does not compute). With ``known``, the pairs'
    embeddings are given."""
    return curve_distances(verifier, work["probes"], work["galleries"], work["maps"],
                           fractions=step_fractions(STEPS)[1:],
                           embeddings=work["embeddings"] if known else None)


def run_quantus(verifier: Any, work: dict[str, Any], known: bool = False) -> np.ndarray:
    """Quantus ``PixelFlipping``'s curve ``(N, STEPS)`` through :class:`PairDistance`, zero
    fill. With ``known``, the galleries' embeddings are given."""
    x, maps = work["quantus_x"], work["quantus_a"]
    model = PairDistance(verifier, work["galleries"],
                         work["embeddings"][1] if known else None).eval()
    metric = quantus.PixelFlipping(
        features_in_step=x.shape[-1] * x.shape[-2] // STEPS, perturb_baseline=0.0,
        normalise=False, abs=False, disable_warnings=True, display_progressbar=False)
    scores = metric(model=model, x_batch=x, y_batch=np.arange(len(x)), a_batch=maps,
                    channel_first=True, softmax=False, device="cpu")
    return np.asarray(scores, dtype=np.float64)


def tie_free(maps: np.ndarray, fractions: tuple[float, ...]) -> np.ndarray:
    """``(N, S)``: True where no tie of equal map values straddles step ``s``'s count."""
    n = maps.shape[0]
    flat = -np.sort(-maps.reshape(n, -1).astype(np.float64), axis=1)
    counts = step_counts(fractions, flat.shape[1])
    out = np.ones((n, len(counts)), dtype=bool)
    for s, k in enumerate(counts):
        if 0 < k < flat.shape[1]:
            out[:, s] = flat[:, k - 1] != flat[:, k]
    return out


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def test_curves_xfr_vs_quantus_pixel_flipping(benchmark: Any, default_verifier: Any,
                                              work: dict[str, Any]) -> None:
    work["quantus_x"] = planes(work["probes"])
    work["quantus_a"] = np.tile(work["maps"][:, None], (1, 1, 3, 1))
    fractions = step_fractions(STEPS)
    ours = run_xfr(default_verifier, work)
    theirs = run_quantus(default_verifier, work)
    assert ours.shape == theirs.shape == (PAIRS, STEPS)
    same = tie_free(work["maps"], fractions)[:, 1:]
    assert same.mean() > 0.9, f"ties straddle {100 * (1 - same.mean()):.0f} % of the steps"
    np.testing.assert_allclose(theirs[same], ours[same], rtol=0, atol=1e-5)
    max_diff = float(np.abs(theirs[same] - ours[same]).max())

    work["embeddings"] = (default_verifier.embed(work["probes"]),
                          default_verifier.embed(work["galleries"]))
    np.testing.assert_array_equal(run_xfr(default_verifier, work, known=True), ours)
    runs: dict[str, Callable[[], Any]] = {
        "xfr": lambda: run_xfr(default_verifier, work),
        "quantus": lambda: run_quantus(default_verifier, work),
        "xfr_known": lambda: run_xfr(default_verifier, work, known=True),
        "quantus_known": lambda: run_quantus(default_verifier, work, known=True),
    }
    times: dict[str, list[float]] = {k: [] for k in runs}

    def alternating() -> None:  # so that all meet the same load on a shared machine
        for name, fn in runs.items():
            times[name].append(_timed(fn))

    benchmark.group = f"deletion curves, {PAIRS} LFW pairs, {STEPS} steps"
    benchmark.pedantic(alternating, rounds=ROUNDS, iterations=1)
    med = {k: float(np.median(v)) for k, v in times.items()}
    ratio = med["quantus"] / med["xfr"]
    ratio_known = med["quantus_known"] / med["xfr_known"]
    black = work["quantus_x"].reshape(PAIRS, -1).min(axis=1)
    benchmark.extra_info.update(
        pairs=PAIRS, steps=STEPS, threads=torch.get_num_threads(),
        **{f"{k}_median_s": v for k, v in med.items()}, xfr_vs_quantus=ratio,
        xfr_vs_quantus_known=ratio_known, compared_points=int(same.sum()),
        max_abs_diff=max_diff, black_is_zero=int((black == 0).sum()))
    print(f"\ndeletion curves of {PAIRS} LFW pairs, {STEPS} steps, {torch.get_num_threads()} "
          f"threads, medians of {len(times['xfr'])}: from the faces, xfr {med['xfr']:.2f} s, "
          f"Quantus PixelFlipping {med['quantus']:.2f} s: xfr {ratio:.2f}x faster; embeddings "
          f"known, xfr {med['xfr_known']:.2f} s, Quantus {med['quantus_known']:.2f} s: xfr "
          f"{ratio_known:.2f}x faster. Curves equal at {int(same.sum())} of {same.size} points "
          f"(max |diff| {max_diff:.1e}); Quantus's 'black' is 0 for "
          f"{int((black == 0).sum())} of {PAIRS} probes, up to {black.max():.0f}")
