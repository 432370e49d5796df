"""The distillation trainer on a tiny synthetic face set: the loss falls, resume is exact,
and the honest split keeps evaluation identities out of training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from xfr import registry
from xfr.training.trainer import TrainConfig, TrainData, augment, centred_teacher, train

ARCH = dict(patch="conv", dim=32, depth=2, heads=2, mlp_dim=64, dropout=0.1,
            attention_scale="head_dim", input_norm="centered")


#: Training views without any augmentation but the mirror image.
PLAIN_VIEWS = dict(shift=0, jitter=0.0, rotate=0.0, scale=0.0, grayscale=0.0, blur=0.0, jpeg=0.0)


def synthetic_set(identities: int = 4, per_identity: int = 8, seed: int = 0) -> TrainData:
    """Each identity: a fixed random face pattern plus noise; its teacher embedding a fixed
    random unit vector (the student must learn pattern -> vector)."""
    rng = np.random.default_rng(seed)
    patterns = rng.integers(0, 256, size=(identities, 112, 112, 3))
    crops, labels, teacher = [], [], []
    directions = rng.normal(size=(identities, 16))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    for i in range(identities):
        for _ in range(per_identity):
            noise = rng.normal(0, 20, size=(112, 112, 3))
            crops.append(np.clip(patterns[i] + noise, 0, 255).astype(np.uint8))
            labels.append(i)
            teacher.append(np.stack([directions[i], directions[i]]))
    return TrainData(np.stack(crops), np.array(labels), np.stack(teacher).astype(np.float32))


def student(num_classes: int = 4):
    return registry.create("verifier", "face-vit", **{**ARCH, "dim": 16},
                           num_classes=num_classes, cosface_s=16.0, cosface_m=0.1)


def test_training_loss_falls_on_a_tiny_synthetic_set(tmp_path):
    torch.manual_seed(0)
    v = student()
    data = synthetic_set()
    cfg = TrainConfig(out=str(tmp_path), epochs=15, batch_size=16, lr=3e-3, warmup_steps=3,
                      threads=1, eval_every_steps=10**9, log_every_steps=5, cosface_weight=0.5,
                      **PLAIN_VIEWS)  # the synthetic faces are pixel noise: views erase them
    log = train(v.model, data, cfg, progress=False)
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert log["done"] and log["step"] == 30
    # the distillation term (1 - cos to the teacher) and the identity loss both fall
    cos = [r["cos"] for r in records]
    face = [r["cosface"] for r in records]
    assert cos[-1] < 0.8 * cos[0], cos
    assert face[-1] < face[0], face


def test_resume_continues_with_identical_state(tmp_path):
    data = synthetic_set(identities=3, per_identity=6)
    cfg = dict(epochs=4, batch_size=6, lr=1e-3, warmup_steps=2, threads=1,
               eval_every_steps=10**9)

    torch.manual_seed(1)
    straight = student(3)
    init = {k: v.clone() for k, v in straight.model.state_dict().items()}
    train(straight.model, data, TrainConfig(out=str(tmp_path / "a"), **cfg), progress=False)

    interrupted = student(3)
    interrupted.model.load_state_dict(init)
    out = TrainConfig(out=str(tmp_path / "b"), **cfg)
    first = train(interrupted.model, data, out, progress=False, stop_at_step=5)
    assert not first["done"] and first["step"] == 5
    resumed = student(3)  # a fresh process would build a fresh model: nothing carried over
    second = train(resumed.model, data, out, progress=False)
    assert second["done"] and second["step"] == straight_steps(data, cfg)
    for k, v in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v, rtol=0, atol=0)


def straight_steps(data: TrainData, cfg: dict) -> int:
    return int(cfg["epochs"] * (len(data.crops) // cfg["batch_size"]))


def test_centred_teacher_rows_are_unit_vectors_around_zero_mean():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(50, 2, 8)) + 3.0
    c, mean = centred_teacher(t)
    np.testing.assert_allclose(np.linalg.norm(c, axis=-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(mean, t.reshape(-1, 8).mean(0))


def test_augment_flips_exactly_the_selected_images_and_keeps_range():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 112, 112) * 255
    flip = torch.tensor([True, False, True, False])
    still = TrainConfig(out="", **PLAIN_VIEWS)
    out = augment(x, flip, still, gen=g)
    torch.testing.assert_close(out[0], x[0].flip(-1))
    torch.testing.assert_close(out[1], x[1])
    every = TrainConfig(out="", shift=4, jitter=0.2, rotate=10, scale=0.1, grayscale=0.5,
                        blur=0.5, jpeg=0.5)
    moved = augment(x, flip, every, gen=g)
    assert moved.shape == x.shape and moved.min() >= 0 and moved.max() <= 255


@pytest.fixture(scope="module")
def lfw_crop(lfw_root) -> np.ndarray:
    """One real aligned face (112x112 RGB uint8)."""
    from xfr.align import align
    from xfr.data.lfw import image_folder

    return align(image_folder(lfw_root) / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg")


def test_each_augmentation_changes_the_view_in_its_own_way(lfw_crop):
    """Grayscale makes the three channels equal, blur lowers the high frequencies, JPEG
    changes the pixels without moving the face, the affine part moves it."""
    x = torch.from_numpy(lfw_crop).permute(2, 0, 1)[None].float().repeat(8, 1, 1, 1)
    flip = torch.zeros(8, dtype=torch.bool)
    g = torch.Generator().manual_seed(1)
    gray = augment(x, flip, TrainConfig(out="", **{**PLAIN_VIEWS, 'grayscale': 1.0}), g)
    torch.testing.assert_close(gray[:, 0], gray[:, 1])
    torch.testing.assert_close(gray[:, 1], gray[:, 2])
    assert (x[:, 0] - x[:, 1]).abs().mean() > 5  # the crop itself is in colour

    def roughness(v: torch.Tensor) -> float:
        return float((v[..., 1:] - v[..., :-1]).abs().mean())

    blurred = augment(x, flip, TrainConfig(out="", **{**PLAIN_VIEWS, 'blur': 1.0}), g)
    assert roughness(blurred) < 0.8 * roughness(x)
    jpeg = augment(x, flip, TrainConfig(out="", **{**PLAIN_VIEWS, 'jpeg': 1.0}), g)
    change = (jpeg - x).abs().mean()
    assert 0.3 < change < 10
    moved = augment(x, flip, TrainConfig(out="", **{**PLAIN_VIEWS, 'rotate': 10, 'scale': 0.1}), g)
    assert (moved - x).abs().mean() > change  # geometry moves more than compression
    assert len({tuple(m.flatten()[:500].tolist()) for m in moved}) == 8  # one draw per view


def test_mismatched_training_arrays_are_rejected():
    with pytest.raises(ValueError, match="differ in length"):
        TrainData(np.zeros((2, 112, 112, 3), np.uint8), np.zeros(3, int), np.zeros((2, 2, 4)))


def saved_model(folder, held_out=(9, 10), **arch):
    v = registry.create("verifier", "face-vit", **{**ARCH, "dim": 16, **arch}, num_classes=0)
    v.config.provenance.update({
        "teacher": "sface", "steps": 7, "training_seconds": 120.0,
        "training_data": {"lfw_images": 10, "extra_images": 5,
                          "lfw_excluded_folds": list(held_out)},
        "evaluation": {"heldout_accuracy": 0.75}})
    v.save(folder)
    return v


def test_warm_start_copies_the_backbone_and_keeps_the_previous_provenance(tmp_path):
    from xfr.training.recipe import warm_start

    saved = saved_model(tmp_path / "stage1")
    fresh = student(num_classes=4)  # a head the saved model lacks stays as initialised
    head_before = {k: v.clone() for k, v in fresh.model.state_dict().items()
                   if k.startswith("head.")}
    previous = warm_start(fresh.model, tmp_path / "stage1", [10, 9])
    state, saved_state = fresh.model.state_dict(), saved.model.state_dict()
    for k, v in saved_state.items():
        assert torch.equal(state[k], v), k
    for k, v in head_before.items():
        assert torch.equal(state[k], v), k
    assert previous["steps"] == 7 and previous["evaluation"]["heldout_accuracy"] == 0.75
    assert previous["folder"] == str(tmp_path / "stage1")


def test_warm_start_refuses_a_model_with_other_held_out_folds(tmp_path):
    from xfr.training.recipe import warm_start

    saved_model(tmp_path / "m", held_out=(1, 2))
    with pytest.raises(ValueError, match="leak evaluation identities"):
        warm_start(student().model, tmp_path / "m", [9, 10])


def test_warm_start_refuses_a_different_architecture(tmp_path):
    from xfr.training.recipe import warm_start

    saved_model(tmp_path / "m", depth=1)
    with pytest.raises(ValueError, match="does not fit this architecture"):
        warm_start(student().model, tmp_path / "m", [9, 10])
    with pytest.raises(FileNotFoundError, match="no config.json"):
        warm_start(student().model, tmp_path / "missing", [9, 10])


def test_model_card_lists_every_training_stage_and_sums_their_time(tmp_path):
    from xfr.training import model_card

    first = {"steps": 960, "training_seconds": 5880.0,
             "training_data": {"lfw_images": 100, "extra_images": 50},
             "evaluation": {"heldout_accuracy": 0.7933}}
    config = {"architecture": {
        "patch": "conv", "dim": 128, "depth": 6, "heads": 4, "mlp_dim": 512,
        "input_norm": "centered", "threshold": 1.3,
        "provenance": {"steps": 640, "training_seconds": 3600.0, "initialised_from": first,
                       "training_data": {"lfw_images": 100, "extra_images": 50},
                       "evaluation": {"heldout_accuracy": 0.8312}}}}
    card = model_card.render(config)
    assert "1600 steps in 2 stage(s), 158 min" in card
    assert "| 1 | 960 | 98 | 150 | 79.33 % |" in card
    assert "| 2 | 640 | 60 | 150 | 83.12 % |" in card


def test_train_command_rejects_a_missing_init_folder_before_any_work(tmp_path, capsys):
    from xfr import cli

    lfw = tmp_path / "lfw"
    lfw.mkdir()
    (lfw / "pairs.txt").write_text("10\t300\n")
    status = cli.main(["train", "--lfw", str(lfw), "--out", str(tmp_path / "out"),
                       "--init", str(tmp_path / "nowhere")])
    assert status == 2
    assert "--init: not a model folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_warm_start_refuses_weights_of_another_width_with_a_value_error(tmp_path):
    from xfr.training.recipe import warm_start

    saved_model(tmp_path / "m", dim=32, heads=2)  # same parameter names, other shapes
    with pytest.raises(ValueError, match="does not fit this architecture: .* shapes differ"):
        warm_start(student().model, tmp_path / "m", [9, 10])


def _provenance(calibration, excluded, folds=(9, 10), stage_excluded=None):
    prov = {"evaluation": {"folds": list(folds), "calibration_folds": list(calibration)},
            "training_data": {"lfw_excluded_folds": list(excluded)}}
    if stage_excluded is not None:
        prov["initialised_from"] = {"training_data": {"lfw_excluded_folds": stage_excluded}}
    return prov


def test_calibration_folds_are_accepted_only_when_never_trained_on_nor_reported():
    from xfr.training.finalize import calibration_folds

    assert calibration_folds(_provenance([7, 8], [7, 8, 9, 10])) == [7, 8]
    with pytest.raises(ValueError, match="no calibration folds"):
        calibration_folds(_provenance([], [9, 10]))
    with pytest.raises(ValueError, match="did not hold out calibration folds \\[7, 8\\]"):
        calibration_folds(_provenance([7, 8], [9, 10]))  # the old model: trained on 1-8
    with pytest.raises(ValueError, match="stage 1 did not hold out calibration folds \\[8\\]"):
        calibration_folds(_provenance([7, 8], [7, 8, 9, 10], stage_excluded=[7, 9, 10]))
    with pytest.raises(ValueError, match="both evaluation and calibration"):
        calibration_folds(_provenance([9], [9, 10]))


def test_the_lfw_split_holds_out_the_calibration_people_too(lfw_root):
    """Training files of the default split: no person of folds 7-10; calibration and
    evaluation pairs are people apart."""
    from xfr.data.lfw import fold_identities, image_folder, read_pairs
    from xfr.training.face_set import list_face_files
    from xfr.training.recipe import CALIBRATION_FOLDS, EVAL_FOLDS, check_disjoint

    pairs = read_pairs(lfw_root / "pairs.txt")
    held_out = fold_identities(pairs, set(EVAL_FOLDS) | set(CALIBRATION_FOLDS))
    files = list_face_files(image_folder(lfw_root), identities=True, exclude_identities=held_out)
    calib = [p for p in pairs if p.fold in CALIBRATION_FOLDS]
    check_disjoint([str(f) for _, f in files], calib)
    with pytest.raises(ValueError, match="evaluation identities"):
        check_disjoint([str(calib[0].probe)], calib)
    assert not fold_identities(pairs, set(CALIBRATION_FOLDS)) & fold_identities(
        pairs, set(EVAL_FOLDS))
