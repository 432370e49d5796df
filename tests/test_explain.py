"""The paper's explainer end to end (issue 6): real faces, a real face ViT, every stage kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xfr
from xfr import registry
from xfr.api import prepare, to_tensor
from xfr.explanation import Explanation


def tiny_vit(threshold: float = 1.0):
    torch.manual_seed(0)
    return registry.create("verifier", "face-vit", patch="p8s8", dim=32, depth=2, heads=2,
                           mlp_dim=64, threshold=threshold)


@pytest.fixture(scope="module")
def lfw_faces(lfw_root):
    """Aligned crops of two images of one person and one image of another (real LFW)."""
    from xfr.data.lfw import image_folder

    folder = image_folder(lfw_root)
    paths = [folder / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg",
             folder / "Aaron_Peirsol" / "Aaron_Peirsol_0002.jpg",
             folder / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg"]
    return to_tensor(prepare([str(p) for p in paths]))


def _decide(verifier, probe, gallery, decision):
    """Put the verifier's threshold on the side of this pair's distance that gives
    ``decision``."""
    e = verifier.embed(torch.stack([probe, gallery]))
    d = float(verifier.distance(e[:1], e[1:])[0])
    verifier.threshold = d * 1.01 + 1e-6 if decision == "positive" else d * 0.99
    return d


@pytest.mark.parametrize("decision", ["positive", "negative"])
def test_explanation_is_complete_for_both_decisions(lfw_faces, decision):
    v = tiny_vit()
    probe, gallery = lfw_faces[0], lfw_faces[1 if decision == "positive" else 2]
    d = _decide(v, probe, gallery, decision)
    e = registry.create("explainer", "paper").explain_pairs(v, probe[None], gallery[None])[0]
    assert e.decision == decision
    assert e.distance == pytest.approx(d, rel=1e-5)
    expected = ["oim", "um"] if decision == "positive" else ["oim", "um", "nium"]
    assert [c.name for c in e.candidates] == expected
    assert e.attention_maps.shape == (2, 112, 112) and e.masks.shape == (2, 112, 112)
    assert np.isfinite(e.attention_maps).all()
    for c in e.candidates:
        assert c.mask.shape == (112, 112) and c.mask.dtype == bool
        assert c.removed_area == pytest.approx(c.mask.mean())
        assert set(c.distances) == ({"pg", "pp"} if decision == "positive" else {"npg"})
    eligible = [c for c in e.candidates if c.eligible]
    if eligible:
        assert e.strategy == max(eligible, key=lambda c: c.score).name
        assert e.heatmaps.shape == (2, 112, 112)
        assert np.isfinite(e.heatmaps).all()
        assert e.heatmaps.min() >= 0 and e.heatmaps.max() <= 1
    else:
        assert e.strategy is None and e.heatmaps is None and e.selection_reason
    back = Explanation.from_json(e.to_json())
    assert back.to_dict() == e.to_dict()


def test_fixed_selector_always_picks_the_named_strategy(lfw_faces):
    v = tiny_vit()
    _decide(v, lfw_faces[0], lfw_faces[2], "negative")
    e = registry.create("explainer", "paper").explain_pairs(
        v, lfw_faces[:1], lfw_faces[2:3], selector="fixed:nium")[0]
    if e.candidate("nium").eligible:
        assert e.strategy == "nium"


def test_batched_explanations_equal_one_by_one(lfw_faces):
    v = tiny_vit()
    _decide(v, lfw_faces[0], lfw_faces[1], "positive")
    explainer = registry.create("explainer", "paper")
    probes = lfw_faces[[0, 0, 1]]
    galleries = lfw_faces[[1, 2, 2]]
    together = explainer.explain_pairs(v, probes, galleries)
    for i in range(3):
        alone = explainer.explain_pairs(v, probes[i : i + 1], galleries[i : i + 1])[0]
        assert alone.decision == together[i].decision
        assert alone.strategy == together[i].strategy
        np.testing.assert_allclose(alone.attention_maps, together[i].attention_maps, atol=1e-5)
        for a, b in zip(alone.candidates, together[i].candidates, strict=True):
            assert a.name == b.name and a.eligible == b.eligible
            np.testing.assert_array_equal(a.mask, b.mask)
            for k in a.distances:
                assert a.distances[k] == pytest.approx(b.distances[k], rel=1e-4, abs=1e-6)
        if alone.heatmaps is not None:
            np.testing.assert_allclose(alone.heatmaps, together[i].heatmaps, atol=1e-4)


def test_saved_figure_is_a_real_png_and_json_round_trips(lfw_faces, tmp_path):
    from PIL import Image

    v = tiny_vit()
    e = registry.create("explainer", "paper").explain_pairs(v, lfw_faces[:1], lfw_faces[2:3])[0]
    png, js = e.save(tmp_path, "pair")
    with Image.open(png) as im:
        assert im.format == "PNG"
        assert im.size[0] > 400 and im.size[1] > 400
        assert np.asarray(im.convert("L")).std() > 10  # a drawing, not a blank canvas
    assert Explanation.from_json(js.read_text()).to_dict() == e.to_dict()


def test_api_aligns_raw_photos_and_accepts_paths(lfw_root):
    from xfr.data.lfw import image_folder

    v = tiny_vit()
    folder = image_folder(lfw_root)
    e = xfr.explain(str(folder / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg"),
                    str(folder / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg"), verifier=v,
                    generator="rollout")
    assert e.faces.shape == (2, 112, 112, 3) and e.notes["generator"] == "rollout"


@pytest.mark.parametrize("bad, message", [
    (torch.full((1, 3, 112, 112), float("nan")), "NaN"),
    (torch.zeros(1, 3, 64, 64), "shape"),
    (torch.zeros(0, 3, 112, 112), "empty"),
])
def test_bad_images_are_rejected_with_a_clear_error(bad, message):
    v = tiny_vit()
    ok = torch.zeros(max(1, bad.shape[0]), 3, 112, 112)
    with pytest.raises(ValueError, match=message):
        gallery = ok[: bad.shape[0]] if bad.shape[0] else bad
        registry.create("explainer", "paper").explain_pairs(v, bad, gallery)


def test_unknown_option_and_black_box_verifier_are_named():
    v = tiny_vit()
    x = torch.zeros(1, 3, 112, 112)
    with pytest.raises(TypeError, match="paper: unknown option"):
        registry.create("explainer", "paper").explain_pairs(v, x, x, colour="red")
    sface = registry.create("verifier", "sface")
    with pytest.raises(TypeError, match="black box"):
        registry.create("explainer", "paper").explain_pairs(sface, x, x)


def test_the_figure_caption_says_same_or_different_person_names_the_inputs_and_has_a_legend(
    lfw_faces, tmp_path
):
    from xfr.figure import LEGEND, caption

    e = xfr.explain(*lfw_faces[:2], method="paper")
    text = caption(e)
    assert ("same person" in text) == (e.decision == "positive")
    assert ("different person" in text) == (e.decision == "negative")
    assert LEGEND in text and "RA = removed area" in text
    e.notes["inputs"] = {"probe": "/photos/alice_1.jpg", "gallery": "/photos/alice_2.jpg"}
    assert caption(e).splitlines()[0] == "alice_1.jpg vs alice_2.jpg"
    png, _ = e.save(tmp_path, "pair")
    assert png.stat().st_size > 0


def test_the_figure_shows_each_photo_with_the_face_box_it_was_aligned_from(lfw_root, tmp_path):
    """Photos (not crops) record where their face was found; the figure draws the photo and
    that box beside the aligned crop, and leaves the column out when there is no photo."""
    from PIL import Image

    from xfr.data.lfw import image_folder

    folder = image_folder(lfw_root)
    probe = folder / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg"
    gallery = folder / "Aaron_Peirsol" / "Aaron_Peirsol_0002.jpg"
    e = xfr.explain(probe, gallery)
    for side in ("probe", "gallery"):
        box = e.notes["faces"][side]
        assert (box["image_width"], box["image_height"]) == (250, 250)
        centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        assert abs(centre[0] - 125) < 40 and abs(centre[1] - 125) < 40  # deep-funneled: centred
        assert 50 < box["width"] < 200 and box["faces_found"] >= 1
    with_photo, _ = e.save(tmp_path, "photo")
    e.notes["faces"] = {"probe": None, "gallery": None}  # as for aligned crops
    without, _ = e.save(tmp_path, "crop")
    wide, narrow = Image.open(with_photo).size[0], Image.open(without).size[0]
    assert wide > narrow  # one more column: the photo with its box
