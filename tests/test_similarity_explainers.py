"""The field's similarity explainers as xfr plugins (issue 18): xSSAB (Huber et al., WACV 2024),
CorrRISE (Lu et al., WACV 2024) and BiLRP (Eberle et al., TPAMI 2022).

Each explains a positive and a negative LFW pair on the bundled model, with sane output (shape,
finite, in [0, 1], the map of the decision, a probe map that changes with the gallery, a pair's
result equal to explaining it alone). Known answers come from a verifier that sees one
region of the face only (tests/region_verifier.py): gradients and correlations outside it are
zero. BiLRP's interactions add up to the similarity it explains, and its links figure renders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from region_verifier import RegionVerifier, random_faces

from xfr import registry
from xfr.errors import OptionError, OptionTypeError
from xfr.explanation import Explanation

METHODS = ("xssab", "corrrise", "bilrp")
#: Reduced settings that keep the file fast; every other option is the documented default.
FAST: dict[str, dict[str, Any]] = {"xssab": {}, "corrrise": {"n_masks": 80},
                                   "bilrp": {"dims": 4}}
REGION = (slice(30, 70), slice(20, 90))


def _probe_raw(method: str, e: Explanation) -> np.ndarray:
    """The probe's signed/raw map, whatever the decision (to compare two galleries)."""
    if method == "xssab":
        return e.extras["similarity"][0]
    if method == "corrrise":
        return e.extras["correlation"][0]
    return e.extras["interactions"].sum(1)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    """One torch thread: on two cores shared with other processes, two threads spin-wait on
    each other in the many small operations of the relevance rules (10x slower here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def lfw_faces(lfw_root: Path, default_verifier: Any) -> tuple[Any, torch.Tensor, torch.Tensor]:
    """One probe against the same person (accepted) and another person (rejected)."""
    from xfr.api import prepare, to_tensor
    from xfr.data.lfw import image_folder

    folder = image_folder(lfw_root)
    a = folder / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg"
    b = folder / "Aaron_Peirsol" / "Aaron_Peirsol_0002.jpg"
    c = folder / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg"
    return default_verifier, to_tensor(prepare([a, a])), to_tensor(prepare([b, c]))


class Explained:
    """Each method's explanations of the two pairs (and of the second pair alone), computed
    when a test first asks for them, so that each method's cost shows in its own test."""

    def __init__(self, faces: tuple[Any, torch.Tensor, torch.Tensor]) -> None:
        self.faces = faces
        self.done: dict[str, tuple[list[Explanation], list[Explanation]]] = {}

    def __getitem__(self, method: str) -> tuple[list[Explanation], list[Explanation]]:
        if method not in self.done:
            verifier, probes, galleries = self.faces
            explainer = registry.create("explainer", method, **FAST[method])
            both = explainer.explain_pairs(verifier, probes, galleries)
            # BiLRP explains pair after pair anyway: its costly second call is left out
            alone = [] if method == "bilrp" else explainer.explain_pairs(
                verifier, probes[1:], galleries[1:])
            self.done[method] = (both, alone)
        return self.done[method]


@pytest.fixture(scope="module")
def explained(lfw_faces: tuple[Any, torch.Tensor, torch.Tensor]) -> Explained:
    return Explained(lfw_faces)


@pytest.mark.lfw
@pytest.mark.parametrize("method", METHODS)
def test_explains_a_positive_and_a_negative_pair_on_the_default_model(
    method: str, explained: Explained
) -> None:
    both, alone = explained[method]
    assert [e.decision for e in both] == ["positive", "negative"]
    for e in both:
        assert e.method == method and e.heatmaps is not None
        assert e.heatmaps.shape == (2, 112, 112) and e.heatmaps.dtype == np.float32
        assert np.isfinite(e.heatmaps).all()
        assert e.heatmaps.min() >= 0 and e.heatmaps.max() <= 1
        assert all(h.max() > h.min() for h in e.heatmaps)
        assert e.notes["map"] == ("similarity" if e.decision == "positive" else "dissimilarity")
        assert isinstance(e.notes["model_passes"], int) and e.notes["model_passes"] > 2
        assert e.notes["seconds_per_pair"] > 0
        assert all(np.isfinite(a).all() for a in e.extras.values())
    # the probe's map depends on the gallery
    first, second = (_probe_raw(method, e) for e in both)
    assert np.corrcoef(first.ravel(), second.ravel())[0, 1] < 0.99
    # a pair's result does not depend on the other pairs of the call
    for e in alone:
        np.testing.assert_allclose(e.heatmaps, both[1].heatmaps, atol=1e-4)


@pytest.mark.lfw
def test_the_model_passes_are_each_methods_count(explained: Explained) -> None:
    (xs, _), (cr, _), (bi, _) = (explained[m] for m in METHODS)
    assert xs[0].notes["model_passes"] == 8  # 2 embeddings + 2 forward + 2 x 2 backward
    assert cr[0].notes["model_passes"] == cr[0].notes["verifier_calls"] == 2 * 80 + 2
    # 2 embeddings, per face one traced forward and one recomputation; 4 coordinates x 2 faces
    assert bi[0].notes["passes"] == {"forward": 4 + 2, "relevance": 2 * 4}
    assert bi[0].notes["model_passes"] == 6 + 8


@pytest.mark.lfw
def test_bilrp_interactions_add_up_to_the_similarity_they_explain(
    explained: Explained
) -> None:
    for e in explained["bilrp"][0]:
        n = e.notes
        assert e.extras["interactions"].shape == (196, 196) and n["grid"] == [14, 14]
        # every coordinate's relevance is conserved down to the tokens (CLS included)
        assert n["relevance_total"] == pytest.approx(n["projected_similarity"], abs=1e-6)
        assert n["patch_total"] == pytest.approx(float(e.extras["interactions"].sum()),
                                                 rel=1e-4, abs=1e-6)
        assert n["cosine"] == pytest.approx(e.notes["score"], abs=1e-5)


@pytest.mark.lfw
def test_bilrp_links_figure_renders_to_png(explained: Explained, tmp_path: Path) -> None:
    from xfr_plugins.explainers.bilrp import render_links, strongest_links

    e = explained["bilrp"][0][0]
    links = strongest_links(e, 10)
    strengths = [abs(v) for _, _, v in links]
    assert len(links) == 10 and strengths == sorted(strengths, reverse=True)
    assert all(0 <= i < 196 and 0 <= j < 196 for i, j, _ in links)
    assert links[0][2] == pytest.approx(float(e.extras["interactions"][links[0][0],
                                                                      links[0][1]]))
    pooled = strongest_links(e, 5, pool=2, sign="positive")
    assert all(v > 0 and i < 49 and j < 49 for i, j, v in pooled)
    png = render_links(e, tmp_path / "links.png", 10, pool=2)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    assert Image.open(png).size[0] > 300


@pytest.mark.lfw
def test_saved_explanations_keep_their_extra_arrays(
    explained: Explained, tmp_path: Path
) -> None:
    for m in METHODS:
        e = explained[m][0][1]
        _, js = e.save(tmp_path, stem=m, figure=False)
        back = Explanation.load(js)
        assert sorted(back.extras) == sorted(e.extras)
        assert back.to_dict() == e.to_dict()


@pytest.mark.lfw
def test_every_key_they_write_is_documented(explained: Explained, tmp_path: Path) -> None:
    import json
    import re

    doc = (Path(__file__).resolve().parents[1] / "docs" / "explanation-format.md").read_text()
    cells = re.findall(r"^\| (`[^|]+`) \|", doc, flags=re.MULTILINE)
    documented = {name for cell in cells for name in re.findall(r"`([^`]+)`", cell)}
    for m in METHODS:
        _, js = explained[m][0][0].save(tmp_path, stem=m, figure=False)
        summary = json.loads(js.read_text())
        keys = set(summary) | set(summary["notes"]) | set(summary["array_shapes"])
        assert sorted(keys - documented) == [], m


# --- known answers on a verifier that sees one region only -----------------------------------
def _region_pair() -> tuple[RegionVerifier, torch.Tensor, torch.Tensor]:
    v = RegionVerifier(REGION, threshold=1.0)
    faces = random_faces(2, seed=4)
    gallery = faces[0].clone()
    gallery[:, REGION[0], REGION[1]] = 0.7 * faces[0][:, REGION[0], REGION[1]] + 0.3 * faces[1][
        :, REGION[0], REGION[1]]
    return v, faces[:1], gallery[None]


def _outside() -> np.ndarray:
    m = np.ones((112, 112), bool)
    m[REGION] = False
    return m


def test_xssab_gradients_live_where_the_verifier_looks() -> None:
    v, probe, gallery = _region_pair()
    (e,) = registry.create("explainer", "xssab").explain_pairs(v, probe, gallery)
    assert e.decision == "positive" and e.notes["gradient_path"] == "embed"
    for key in ("similarity", "dissimilarity"):
        maps = e.extras[key]
        assert (maps[:, _outside()] == 0).all() and (maps[:, ~_outside()] > 0).mean() > 0.5
    n = e.notes
    assert n["arguments"]["similarity"] + n["arguments"]["dissimilarity"] == 64
    assert (n["argument_scores"]["similarity"] + n["argument_scores"]["dissimilarity"]
            == pytest.approx(n["score"], abs=1e-5))
    assert n["bound"] == pytest.approx((1 - 1.0 / 2) / 64)


def test_xssab_refuses_what_it_cannot_differentiate() -> None:
    v, probe, gallery = _region_pair()

    class Frozen(RegionVerifier):
        def embed(self, images: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return super().embed(images)

    with pytest.raises(OptionTypeError, match="needs the gradient of the verifier's embedding"):
        registry.create("explainer", "xssab").explain_pairs(Frozen(REGION), probe, gallery)

    class Cosine(RegionVerifier):  # a distance that is not 2 - 2 cos: no cosine threshold
        def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return 1 - (F.normalize(a, dim=-1) * F.normalize(b, dim=-1)).sum(-1)

    with pytest.raises(OptionError, match="pass bound=<number>"):
        registry.create("explainer", "xssab").explain_pairs(Cosine(REGION), probe, gallery)
    (e,) = registry.create("explainer", "xssab", bound=0.0).explain_pairs(
        Cosine(REGION), probe, gallery)
    assert e.notes["bound"] == 0.0


def test_corrrise_is_seeded_batch_free_and_finds_the_region() -> None:
    v, probe, gallery = _region_pair()
    explainer = registry.create("explainer", "corrrise", n_masks=60, patch_size=20)
    (a,) = explainer.explain_pairs(v, probe, gallery)
    (b,) = explainer.explain_pairs(v, probe, gallery, batch_size=7)
    (c,) = explainer.explain_pairs(v, probe, gallery, seed=1)
    np.testing.assert_allclose(a.extras["correlation"], b.extras["correlation"], atol=1e-6)
    assert not np.allclose(a.extras["correlation"], c.extras["correlation"])
    r = np.abs(a.extras["correlation"])
    # pixels the verifier never sees correlate only by chance (they share masks with it)
    assert r[:, ~_outside()].mean() > 2 * r[:, _outside()].mean()
    (d,) = explainer.explain_pairs(v, probe, gallery, masks="rise", correlation="spearman")
    assert np.isfinite(d.extras["correlation"]).all() and d.notes["masks"].endswith("0.1)")


def test_corrrise_patch_masks_and_correlation() -> None:
    from xfr_plugins.explainers.corrrise import PatchMasks, correlation_maps

    masks = PatchMasks(40, 16, patches=2, patch_size=5, seed=3)
    m = masks.build(0, 40)
    assert m.shape == (40, 16, 16) and set(m.unique().tolist()) <= {0.0, 1.0}
    holes = (m == 0).flatten(1).sum(1)
    assert (holes >= 25).all() and (holes <= 50).all()
    values = np.random.default_rng(0).normal(size=(2, 40))
    r = correlation_maps(masks, values, 16)
    flat = m.flatten(1).double().numpy()
    j = int(np.argmax(flat.std(0)))
    assert r[1].ravel()[j] == pytest.approx(np.corrcoef(values[1], flat[:, j])[0, 1])
    never = flat.std(0) == 0
    assert (r[:, never.reshape(16, 16)] == 0).all()


def test_bilrp_refuses_a_black_box_before_any_model_pass() -> None:
    v, probe, gallery = _region_pair()
    with pytest.raises(OptionTypeError, match="bilrp needs a ViT verifier"):
        registry.create("explainer", "bilrp").explain_pairs(v, probe, gallery)
    assert v.calls == 0


def test_relevance_of_one_image_serves_many_relevance_vectors(default_verifier: Any) -> None:
    from xfr_plugins.attention.relevance import propagate_features
    from xfr_plugins.attention.tracing import run_vit

    x = random_faces(1, seed=0)
    one, three = run_vit(default_verifier, x), run_vit(default_verifier, x.repeat(3, 1, 1, 1))
    start = torch.randn(3, 128, generator=torch.Generator().manual_seed(0))
    a, _ = propagate_features(default_verifier.backbone, one, start, alpha=0.5)
    b, _ = propagate_features(default_verifier.backbone, three, start, alpha=0.5)
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="4 relevance vectors for a trace of 3 images"):
        propagate_features(default_verifier.backbone, three, torch.zeros(4, 128))


@pytest.mark.parametrize(("method", "options", "error"), [
    ("xssab", {"bound": "cosine"}, OptionError),
    ("xssab", {"bound": [0.1]}, OptionTypeError),
    ("xssab", {"seed": 1}, OptionTypeError),  # no randomness: no seed
    ("corrrise", {"n_masks": 1}, OptionError),
    ("corrrise", {"masks": "grid"}, OptionError),
    ("corrrise", {"correlation": 2}, OptionTypeError),
    ("corrrise", {"p_keep": 1.5}, OptionError),
    ("bilrp", {"dims": 0}, OptionError),
    ("bilrp", {"alpha": -1}, OptionError),
    ("bilrp", {"precision": "half"}, OptionError),
    ("bilrp", {"explain_negative": False}, OptionTypeError),
])
def test_options_are_checked_when_the_explainer_is_built(
    method: str, options: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        registry.create("explainer", method, **options)


@pytest.mark.lfw
def test_xfr_explain_runs_them_and_refuses_the_paper_flags(
    lfw_root: Path, default_verifier: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from xfr import cli
    from xfr.data.lfw import image_folder

    folder = image_folder(lfw_root)
    a = str(folder / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg")
    b = str(folder / "Aaron_Peirsol" / "Aaron_Peirsol_0002.jpg")
    assert cli.main(["explain", a, b, "--method", "xssab", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "  heatmaps: probe and gallery (xssab, 8 model passes)" in out.splitlines()
    back = Explanation.load(tmp_path / "explanation.json")
    assert back.method == "xssab" and sorted(back.extras) == ["dissimilarity", "similarity"]
    assert (tmp_path / "explanation.png").is_file()
    assert cli.main(["explain", a, b, "--method", "bilrp", "--generator", "rollout"]) == 2
    assert "--generator does not apply to --method bilrp" in (
        capsys.readouterr().err)
