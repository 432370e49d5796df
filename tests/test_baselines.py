"""The perturbation baselines MinPlus, AVG, RISE and LIME (issue 7; paper Sec. 2 and Sec. 4).

They explain any verifier through its embeddings alone. The verifier built here is a real one
whose embedding depends only on one known box of the face: a fixed random projection of that
box's pixels, L2-normalised. So the right answer is known: every map must single out the box
(positive pair), and, when half of the box is changed in the gallery, the changed half
(negative pair).
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage
from xfr_plugins.explainers.lime import fit_weighted_linear, superpixels
from xfr_plugins.explainers.minplus import gaussian_holes, grid_positions
from xfr_plugins.explainers.perturbation import gaussian_kernel, smooth
from xfr_plugins.explainers.rise import RiseMasks

from xfr import registry
from xfr.explanation import Explanation
from xfr.interfaces import Explainer

METHODS = ("minplus", "avg", "rise", "lime")
#: Reduced settings that keep the file fast; every other option is the documented default.
FAST = {"minplus": {}, "avg": {}, "rise": {"n_masks": 1000}, "lime": {}}

SMALL_BOX = (24, 56, 56, 88)  # rows y0:y1, cols x0:x1, 32 x 32 (around the right eye)
BIG_BOX = (24, 72, 24, 88)  # 48 x 64: its two halves are wider than MinPlus' grid step


class BoxVerifier:
    """Embedding = L2-normalised fixed random projection of the pixels inside ``box``."""

    name = "box-projection"
    input_size = 112
    threshold = 1.0  # squared L2 of unit vectors: positive when the cosine exceeds 0.5

    def __init__(self, box: tuple[int, int, int, int], dim: int = 128, seed: int = 0) -> None:
        self.box = box
        y0, y1, x0, x1 = box
        g = torch.Generator().manual_seed(seed)
        self.proj = torch.randn(3 * (y1 - y0) * (x1 - x0), dim, generator=g)
        self.images_seen = 0
        self.calls = 0

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        self.images_seen += images.shape[0]
        self.calls += 1
        y0, y1, x0, x1 = self.box
        x = images[:, :, y0:y1, x0:x1].reshape(images.shape[0], -1) / 127.5 - 1.0
        return F.normalize(x @ self.proj, dim=1)

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ((a - b) ** 2).sum(1)


def texture(seed: int, size: int = 112) -> torch.Tensor:
    """A smooth, high-contrast random RGB texture (3, size, size) in 0..255."""
    rng = np.random.default_rng(seed)
    x = ndimage.gaussian_filter(rng.normal(size=(3, size, size)), sigma=(0, 2, 2))
    x = 127.5 + 120.0 * np.tanh(2.0 * x / x.std())
    return torch.tensor(np.clip(x, 0, 255), dtype=torch.float32)


def outside(box: tuple[int, int, int, int], size: int = 112) -> np.ndarray:
    y0, y1, x0, x1 = box
    m = np.ones((size, size), bool)
    m[y0:y1, x0:x1] = False
    return m


def positive_pair(box: tuple[int, int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The same box content, a different face everywhere else."""
    probe, other = texture(1), texture(2)
    gallery = probe.clone()
    out = torch.from_numpy(outside(box))
    gallery[:, out] = other[:, out]
    return probe, gallery


def negative_pair(box: tuple[int, int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The gallery's box: left half identical, right half inverted (255 - x)."""
    y0, y1, x0, x1 = box
    xm = (x0 + x1) // 2
    probe = texture(1)
    gallery = probe.clone()
    gallery[:, y0:y1, xm:x1] = 255.0 - probe[:, y0:y1, xm:x1]
    return probe, gallery


@pytest.fixture(scope="module")
def small_box_runs() -> dict[str, tuple[BoxVerifier, list[Explanation]]]:
    """Each method on the positive pair of the 32 x 32-box verifier."""
    out = {}
    probe, gallery = positive_pair(SMALL_BOX)
    for m in METHODS:
        v = BoxVerifier(SMALL_BOX)
        out[m] = (v, registry.create("explainer", m, **FAST[m]).explain_pairs(
            v, probe[None], gallery[None]))
    return out


@pytest.fixture(scope="module")
def big_box_runs() -> dict[str, tuple[BoxVerifier, list[Explanation]]]:
    """Each method on [positive pair, negative pair] of the big-box verifier, in one call."""
    out = {}
    pp, pg = positive_pair(BIG_BOX)
    np_, ng = negative_pair(BIG_BOX)
    for m in METHODS:
        v = BoxVerifier(BIG_BOX)
        ex = registry.create("explainer", m, **FAST[m])
        out[m] = (v, ex.explain_pairs(v, torch.stack([pp, np_]), torch.stack([pg, ng])))
    return out


# --------------------------------------------------------------------------- registration


def test_the_four_baselines_are_registered_explainers_through_the_entry_point() -> None:
    assert set(METHODS) <= set(registry.names("explainer"))
    for m in METHODS:
        ex = registry.create("explainer", m)
        assert isinstance(ex, Explainer)
        assert ex.name == m


def test_defaults_are_the_ones_the_authors_ran() -> None:
    """docs/method.md, "Perturbation baselines" (paper Sec. 2, Sec. 4)."""
    for m in ("minplus", "avg"):
        o = registry.create("explainer", m).options
        assert (o["hole_size"], o["step"], o["iterations"], o["stop"]) == (161, 16, 20, 0.01)
        assert o["hole_sigma"] is None  # -> 161 / 8.5
    o = registry.create("explainer", "rise").options
    assert (o["n_masks"], o["p_keep"], o["grid"]) == (10000, 0.1, 5)
    o = registry.create("explainer", "lime").options
    assert (o["n_samples"], o["p_keep"], o["kernel_width"], o["top_k"]) == (500, 0.5, 0.25, 16)
    assert (o["kernel_size"], o["max_dist"], o["ratio"]) == (3, 200, 0.2)


# --------------------------------------------------------------------------- building blocks


def test_minplus_holes_are_gaussian_holes_centred_on_the_grid() -> None:
    pos = grid_positions(112, 16)
    assert len(pos) == 36 and pos[0] == (16, 16) and pos[-1] == (96, 96)
    holes = gaussian_holes(112, pos, 161, 161 / 8.5)
    for k, (i, j) in enumerate(pos):
        assert holes[k, i, j] == 0.0
        assert np.unravel_index(np.argmin(holes[k]), (112, 112)) == (i, j)
    # 1 - G: at distance r from the centre the hole keeps 1 - exp(-r^2 / 2 sigma^2)
    s = 161 / 8.5
    assert holes[0, 16, 16 + 30] == pytest.approx(1 - np.exp(-(30**2) / (2 * s * s)))


def test_map_smoothing_equals_opencv_filter2d_with_the_same_gaussian() -> None:
    m = np.random.default_rng(0).random((112, 112))
    for size in (161, 56):
        ref = cv2.filter2D(m, -1, gaussian_kernel(size, size / 8.5),
                           borderType=cv2.BORDER_REFLECT_101)
        np.testing.assert_allclose(smooth(m, size, size / 8.5), ref, rtol=1e-9, atol=1e-9)


def test_lime_weighted_regression_recovers_a_linear_model_and_solves_the_normal_equations():
    rng = np.random.default_rng(0)
    z = rng.binomial(1, 0.5, size=(200, 12))
    c = rng.normal(size=12)
    coef, b = fit_weighted_linear(z, 0.3 + z @ c, rng.random(200) + 0.1)
    np.testing.assert_allclose(coef, c, atol=1e-9)
    assert b == pytest.approx(0.3)
    y, w = rng.normal(size=200), rng.random(200)
    x = np.hstack([z, np.ones((200, 1))])
    normal = np.linalg.solve(x.T @ (w[:, None] * x), x.T @ (w * y))
    coef, b = fit_weighted_linear(z, y, w)
    np.testing.assert_allclose(np.append(coef, b), normal, atol=1e-9)


def test_rise_masks_are_smooth_shifted_grids_with_the_keep_probability() -> None:
    masks = RiseMasks(2000, 112, 5, 0.1, seed=0)
    m = masks.build(0, 2000).numpy()
    assert m.shape == (2000, 112, 112) and m.min() >= 0.0 and m.max() <= 1.0
    assert m.mean() == pytest.approx(0.1, abs=0.01)
    assert len(np.unique(np.round(m[0], 3))) > 10  # bilinear, not blocky
    np.testing.assert_array_equal(masks.build(5, 9).numpy(), m[5:9])


# --------------------------------------------------------------------------- the maps


@pytest.mark.parametrize("method", METHODS)
def test_positive_pair_heatmaps_peak_in_the_region_the_verifier_uses(
    method: str, small_box_runs: dict
) -> None:
    _, (r,) = small_box_runs[method]
    assert r.decision == "positive" and r.method == method
    assert r.heatmaps is not None
    assert r.heatmaps.shape == (2, 112, 112) and r.heatmaps.dtype == np.float32
    assert r.heatmaps.min() >= 0.0 and r.heatmaps.max() == pytest.approx(1.0)
    assert r.faces is not None and r.faces.shape == (2, 112, 112, 3)
    y0, y1, x0, x1 = SMALL_BOX
    out = outside(SMALL_BOX)
    for side in (0, 1):
        h = r.heatmaps[side]
        i, j = np.unravel_index(np.argmax(h), h.shape)
        if method == "lime":
            # LIME's unit is the superpixel: the peak's superpixel must overlap the box.
            seg = superpixels(torch.from_numpy(r.faces[side]).permute(2, 0, 1).float(),
                              3, 200, 0.2, 0)
            assert (seg[y0:y1, x0:x1] == seg[i, j]).any(), (side, i, j)
        else:
            assert y0 <= i < y1 and x0 <= j < x1, (side, i, j)
        assert h[~out].mean() > 2.5 * h[out].mean(), side


@pytest.mark.parametrize("method", METHODS)
def test_negative_decision_maps_the_half_that_differs(method: str, big_box_runs: dict) -> None:
    _, (_, r) = big_box_runs[method]
    assert r.decision == "negative"
    assert r.heatmaps is not None and "unsupported" not in r.notes
    y0, y1, x0, x1 = BIG_BOX
    xm = (x0 + x1) // 2
    for side in (0, 1):
        h = r.heatmaps[side]
        same, changed = h[y0:y1, x0:xm].mean(), h[y0:y1, xm:x1].mean()
        assert changed > 2.0 * same, (side, same, changed)


@pytest.mark.parametrize("method", METHODS)
def test_negative_decision_is_unsupported_without_the_extension(method: str) -> None:
    v = BoxVerifier(BIG_BOX)
    probe, gallery = negative_pair(BIG_BOX)
    ex = registry.create("explainer", method, explain_negative=False)
    (r,) = ex.explain_pairs(v, probe[None], gallery[None])
    assert r.decision == "negative" and r.heatmaps is None
    assert "positive decisions only" in r.notes["unsupported"]
    assert r.notes["verifier_calls"] == v.images_seen == 2


# --------------------------------------------------------------------------- determinism, cost


@pytest.mark.parametrize("method", METHODS)
def test_batching_pairs_or_images_does_not_change_the_result(
    method: str, big_box_runs: dict
) -> None:
    """Each pair alone, 29 images per verifier call == both pairs together, 128 per call."""
    v_together, together = big_box_runs[method]
    pairs = [positive_pair(BIG_BOX), negative_pair(BIG_BOX)]
    v = BoxVerifier(BIG_BOX)
    ex = registry.create("explainer", method, **FAST[method])
    alone = [ex.explain_pairs(v, p[None], g[None], batch_size=29)[0] for p, g in pairs]
    for a, t in zip(alone, together, strict=True):
        assert a.decision == t.decision
        np.testing.assert_allclose(a.heatmaps, t.heatmaps, atol=1e-5)
        assert a.notes["verifier_calls"] == t.notes["verifier_calls"]
    # the counts are the images the verifier really embedded, in batches of at most 29
    assert sum(a.notes["verifier_calls"] for a in alone) == v.images_seen
    assert sum(t.notes["verifier_calls"] for t in together) == v_together.images_seen
    assert v.calls >= v.images_seen / 29


def test_verifier_calls_follow_each_methods_budget(big_box_runs: dict) -> None:
    _, (pos, neg) = big_box_runs["rise"]
    assert pos.notes["verifier_calls"] == neg.notes["verifier_calls"] == 2 * 1000 + 2
    _, (pos, _) = big_box_runs["lime"]
    assert pos.notes["verifier_calls"] == 2 * 500 + 2
    _, (pos, _) = big_box_runs["minplus"]
    procs = pos.notes["procedures"]
    assert 2 < pos.notes["verifier_calls"] <= 2 + 2 * (36 * 20 * 2 + 1)
    assert all(p[k]["rounds"] <= 20 for p in procs.values() for k in ("minus", "plus"))


@pytest.mark.parametrize("method", ["rise", "lime", "minplus"])
def test_same_seed_gives_the_same_maps_and_another_seed_other_maps(method: str) -> None:
    v = BoxVerifier(SMALL_BOX)
    probe, gallery = positive_pair(SMALL_BOX)
    small = {"rise": {"n_masks": 300}, "lime": {"n_samples": 150}, "minplus": {"iterations": 3}}
    ex = registry.create("explainer", method, **small[method])
    a = ex.explain_pairs(v, probe[None], gallery[None], seed=3)[0]
    b = ex.explain_pairs(v, probe[None], gallery[None], seed=3)[0]
    np.testing.assert_array_equal(a.heatmaps, b.heatmaps)
    assert a.notes["seed"] == 3
    if method != "minplus":  # MinPlus' only randomness is the near-black start of Plus
        c = ex.explain_pairs(v, probe[None], gallery[None], seed=4)[0]
        assert not np.array_equal(a.heatmaps, c.heatmaps)


def test_explanations_round_trip_through_json(big_box_runs: dict) -> None:
    for m in METHODS:
        for r in big_box_runs[m][1]:
            back = Explanation.from_json(r.to_json())
            np.testing.assert_array_equal(back.heatmaps, r.heatmaps)
            assert back.notes["verifier_calls"] == r.notes["verifier_calls"]
            json.dumps(r.notes)


def test_progress_bar_is_shown_only_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    v = BoxVerifier(SMALL_BOX)
    probe, gallery = positive_pair(SMALL_BOX)
    ex = registry.create("explainer", "rise", n_masks=200, batch_size=50)
    ex.explain_pairs(v, probe[None], gallery[None])
    assert "rise masks" not in capsys.readouterr().err
    ex.explain_pairs(v, probe[None], gallery[None], progress=True)
    assert "rise masks" in capsys.readouterr().err


# --------------------------------------------------------------------------- bad input


def test_bad_inputs_and_options_raise_errors_that_name_the_problem() -> None:
    v = BoxVerifier(SMALL_BOX)
    probe, gallery = positive_pair(SMALL_BOX)
    p, g = probe[None], gallery[None]
    ex = registry.create("explainer", "rise", n_masks=10)
    with pytest.raises(TypeError, match="torch.Tensor"):
        ex.explain_pairs(v, p.numpy(), g)
    # integer RGB values are faces too (xfr.interfaces.check_faces, as for every verifier)
    as_uint8 = ex.explain_pairs(v, p.round().to(torch.uint8), g)[0]
    as_float = ex.explain_pairs(v, p.round(), g)[0]
    np.testing.assert_array_equal(as_uint8.heatmaps, as_float.heatmaps)
    with pytest.raises(ValueError, match=r"probes: got shape \(1, 112, 112, 3\)"):
        ex.explain_pairs(v, p.permute(0, 2, 3, 1), g)
    with pytest.raises(ValueError, match="112x112"):
        ex.explain_pairs(v, p[..., :64, :64], g[..., :64, :64])
    bad = p.clone()
    bad[0, 0, 5, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        ex.explain_pairs(v, bad, g)
    with pytest.raises(ValueError, match="0..255"):
        ex.explain_pairs(v, p / 255.0 - 0.5, g)
    with pytest.raises(ValueError, match="same shape"):
        ex.explain_pairs(v, torch.cat([p, p]), g)
    with pytest.raises(ValueError, match="empty"):
        ex.explain_pairs(v, p[:0], g[:0])
    with pytest.raises(TypeError, match="Verifier"):
        ex.explain_pairs(object(), p, g)
    with pytest.raises(TypeError, match="n_mask"):
        ex.explain_pairs(v, p, g, n_mask=5)
    with pytest.raises(TypeError, match="unknown option"):
        registry.create("explainer", "lime", samples=5)
    for method, opts, word in [
        ("rise", {"n_masks": 0}, "n_masks"),
        ("rise", {"p_keep": 1.5}, "p_keep"),
        ("rise", {"map": "both"}, "map"),
        ("lime", {"kernel_width": float("nan")}, "kernel_width"),
        ("lime", {"top_k": 0}, "top_k"),
        ("minplus", {"step": 0}, "step"),
        ("avg", {"plus_start": "grey"}, "plus_start"),
        ("minplus", {"batch_size": 0}, "batch_size"),
        ("minplus", {"seed": -1}, "seed"),
    ]:
        with pytest.raises(ValueError, match=word):
            registry.create("explainer", method, **opts)
    with pytest.raises(ValueError, match="no hole centre"):
        registry.create("explainer", "minplus", step=200).explain_pairs(v, p, g)


def test_a_verifier_returning_nan_is_reported() -> None:
    class Broken(BoxVerifier):
        def embed(self, images: torch.Tensor) -> torch.Tensor:
            return torch.full((images.shape[0], 4), float("nan"))

    probe, gallery = positive_pair(SMALL_BOX)
    with pytest.raises(ValueError, match="NaN"):
        registry.create("explainer", "lime").explain_pairs(
            Broken(SMALL_BOX), probe[None], gallery[None])


# --------------------------------------------------------------------------- a real face


@pytest.mark.lfw
def test_on_a_real_aligned_lfw_face_every_baseline_finds_the_box(lfw_root) -> None:
    from xfr.align import align
    from xfr.data.lfw import image_folder

    path = sorted((image_folder(lfw_root) / "Aaron_Peirsol").glob("*.jpg"))[0]
    face = torch.from_numpy(align(path)).permute(2, 0, 1).float()
    gallery = face.clone()
    out = torch.from_numpy(outside(SMALL_BOX))
    noise = torch.from_numpy(np.random.default_rng(0).normal(0, 25, size=(3, 112, 112)))
    gallery[:, out] = (gallery + noise.float()).clamp(0, 255)[:, out]
    for m in METHODS:
        v = BoxVerifier(SMALL_BOX)
        ex = registry.create("explainer", m, **FAST[m])
        (r,) = ex.explain_pairs(v, face[None], gallery[None])
        assert r.decision == "positive"
        for side in (0, 1):
            h = r.heatmaps[side]
            assert h[~out.numpy()].mean() > 2.0 * h[out.numpy()].mean(), (m, side)


@pytest.mark.parametrize("method", ["rise", "lime"])
def test_the_public_api_explains_with_a_baseline_by_name(method: str) -> None:
    """``xfr.explain(..., method=NAME)`` on 112x112 uint8 crops reaches the same explainer."""
    import xfr

    v = BoxVerifier(SMALL_BOX)
    probe, gallery = positive_pair(SMALL_BOX)
    crops = [x.round().to(torch.uint8).permute(1, 2, 0).numpy() for x in (probe, gallery)]
    small = {"rise": {"n_masks": 200}, "lime": {"n_samples": 100}}[method]
    r = xfr.explain(crops[0], crops[1], verifier=v, method=method, **small)
    direct = registry.create("explainer", method, **small).explain_pairs(
        BoxVerifier(SMALL_BOX), *(torch.from_numpy(c).permute(2, 0, 1).float()[None]
                                  for c in crops))[0]
    assert r.method == method and r.decision == "positive"
    np.testing.assert_allclose(r.heatmaps, direct.heatmaps, atol=1e-6)
