"""The shipped default model (issue 5): loads offline, says what it is, keeps its numbers,
and was never trained on the people of the folds it is evaluated on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from xfr.api import default_model_path


@pytest.fixture(scope="module")
def config(default_verifier):
    return json.loads((default_model_path() / "config.json").read_text())


def test_default_model_loads_offline_and_embeds(default_verifier):
    x = torch.rand(2, 3, 112, 112) * 255
    e = default_verifier.embed(x)
    assert e.shape[0] == 2 and torch.isfinite(e).all()
    torch.testing.assert_close(e.norm(dim=1), torch.ones(2))
    assert hasattr(default_verifier, "backbone") and default_verifier.grid_size == (14, 14)


def test_default_model_config_says_what_it_is(config):
    assert config["verifier"] == "face-vit"
    arch = config["architecture"]
    assert 0 < arch["threshold"] < 4
    prov = arch["provenance"]
    assert prov["teacher"] == "sface"
    ev = prov["evaluation"]
    held_out = sorted(ev["folds"] + ev["calibration_folds"])
    from xfr.training.model_card import stages

    for stage in stages(prov):  # every training stage held out the same folds
        assert stage["training_data"]["lfw_excluded_folds"] == held_out
    for folder in prov["training_data"]["extra_folders"]:  # no path of the training machine
        assert not Path(folder).is_absolute(), folder
    assert "/work/" not in json.dumps(prov) and "/home/" not in json.dumps(prov)
    assert 0.5 < prov["evaluation"]["heldout_accuracy"] <= 1
    assert "CC BY 4.0" in json.dumps(prov)  # FairFace's attribution travels with the weights
    assert prov["date"]
    size = sum(f.stat().st_size for f in default_model_path().iterdir())
    assert size < 20 * 2**20
    assert (default_model_path() / "MODEL_CARD.md").exists()


def test_no_training_identity_appears_in_the_evaluation_folds(config, lfw_root):
    from xfr.data.lfw import fold_identities, identity_of, image_folder, read_pairs
    from xfr.training.face_set import list_face_files
    from xfr.training.recipe import check_disjoint

    prov = config["architecture"]["provenance"]
    folds = set(prov["evaluation"]["folds"])
    pairs = read_pairs(lfw_root / "pairs.txt")
    held = [p for p in pairs if p.fold in folds]
    excluded = fold_identities(pairs, set(prov["training_data"]["lfw_excluded_folds"]))
    train = list_face_files(image_folder(lfw_root), identities=True, exclude_identities=excluded)
    assert len(train) == prov["training_data"]["lfw_images"]
    check_disjoint([str(f) for _, f in train], held)
    names = {identity_of(p.probe) for p in held} | {identity_of(p.gallery) for p in held}
    assert not names & {n for n, _ in train}
    with pytest.raises(ValueError, match="evaluation identities"):
        check_disjoint([str(held[0].probe)], held)


@pytest.mark.slow
def test_default_model_reaches_its_reported_accuracy_on_200_heldout_pairs(
        default_verifier, config, lfw_root, tmp_path):
    from xfr.data.lfw import read_pairs
    from xfr.evaluation.verification import accuracy_at
    from xfr.training.finalize import fixed_sample, pair_distances

    ev = config["architecture"]["provenance"]["evaluation"]
    sample = fixed_sample(read_pairs(lfw_root / "pairs.txt"), ev["folds"])
    assert len(sample) == 200 and sum(p.same for p in sample) == 100
    d = pair_distances(default_verifier, sample, tmp_path)
    acc = accuracy_at(d, np.array([p.same for p in sample]), default_verifier.threshold)
    assert abs(acc - ev["sample200_accuracy"]) <= 0.02
    assert abs(acc - ev["accuracy_at_shipped_threshold"]) <= 0.05
    gray = pair_distances(default_verifier, sample, tmp_path, grayscale=True)
    acc_gray = accuracy_at(gray, np.array([p.same for p in sample]), default_verifier.threshold)
    assert abs(acc_gray - ev["sample200_accuracy_gray"]) <= 0.02
    assert abs(acc_gray - ev["accuracy_at_shipped_threshold_gray"]) <= 0.05


def test_the_threshold_was_chosen_on_people_never_trained_on_nor_reported(config, lfw_root):
    """The calibration pairs share no person with the training images of any stage, nor with
    the evaluation pairs; and the shipped threshold is the best one on them."""
    from xfr.data.lfw import fold_identities, image_folder, read_pairs
    from xfr.training.face_set import list_face_files
    from xfr.training.finalize import calibration_folds

    prov = config["architecture"]["provenance"]
    calibration = calibration_folds(prov)  # raises if any stage trained on them
    pairs = read_pairs(lfw_root / "pairs.txt")
    calib_people = fold_identities(pairs, set(calibration))
    eval_people = fold_identities(pairs, set(prov["evaluation"]["folds"]))
    assert calib_people and not calib_people & eval_people
    trained = list_face_files(image_folder(lfw_root), identities=True,
                              exclude_identities=fold_identities(
                                  pairs, set(prov["training_data"]["lfw_excluded_folds"])))
    assert len(trained) == prov["training_data"]["lfw_images"]
    assert not calib_people & {name for name, _ in trained}
    assert f"folds {calibration}" in prov["evaluation"]["threshold_chosen_on"]
