"""The honest LFW recipe: train on some people, choose the threshold on others, report on a third.

LFW View 2 folds are identity-disjoint. With evaluation folds E (default 9 and 10: 1,200
pairs) and calibration folds C (default 7 and 8: 1,200 pairs), training uses every LFW image
whose person appears in no pair of E or C (including people in no pair at all), plus any extra
folders of aligned faces (FairFace). The shipped threshold is chosen on C (people the model
never saw, pairs its accuracy is never reported on) and the accuracy is reported on E.
:func:`check_disjoint` proves the split and the model card records it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from xfr.data.lfw import Pair, fold_identities, identity_of, image_folder, read_pairs
from xfr.evaluation.verification import best_threshold, kfold_accuracy
from xfr.training.face_set import FaceSet, build_face_set, list_face_files, teacher_embeddings
from xfr.training.trainer import LUMA_WEIGHTS, TrainData

#: LFW View 2 folds whose pairs are reported (never trained on, never used to choose anything).
EVAL_FOLDS: tuple[int, ...] = (9, 10)
#: LFW View 2 folds whose pairs choose the shipped threshold (never trained on, never reported).
CALIBRATION_FOLDS: tuple[int, ...] = (7, 8)


@dataclass
class HonestSplit:
    """Training faces, and the held-out pairs: evaluation (reported) and calibration."""

    train: FaceSet
    eval_pairs: list[Pair]
    eval_folds: list[int]
    eval_identities: set[str]
    calibration_pairs: list[Pair]
    calibration_folds: list[int]


def check_disjoint(train_files: Sequence[str], eval_pairs: Sequence[Pair]) -> None:
    """Raise ``ValueError`` if any training image's person appears in an evaluation pair."""
    eval_names = {identity_of(p.probe) for p in eval_pairs} | {
        identity_of(p.gallery) for p in eval_pairs}
    leaked = sorted({Path(f).parent.name for f in train_files} & eval_names)
    if leaked:
        raise ValueError(
            f"{len(leaked)} evaluation identities in the training set, e.g. {leaked[:5]}")


def check_folds(eval_folds: Sequence[int], calibration_folds: Sequence[int]) -> None:
    """``ValueError`` unless the evaluation and calibration folds are LFW folds 1-10, at least
    one evaluation fold, and no fold in both (a threshold chosen on reported pairs)."""
    for name, folds in (("evaluation", eval_folds), ("calibration", calibration_folds)):
        bad = [f for f in folds if not 1 <= int(f) <= 10]
        if bad:
            raise ValueError(f"{name} folds must be LFW View 2 folds 1-10, got {bad}")
    if not eval_folds:
        raise ValueError("at least one evaluation fold is needed")
    both = sorted(set(eval_folds) & set(calibration_folds))
    if both:
        raise ValueError(f"folds {both} are both evaluation and calibration folds: the threshold"
                         " would be chosen on the pairs it is reported on")


def lfw_split(lfw_root: str | Path, cache: str | Path,
              eval_folds: Sequence[int] = EVAL_FOLDS,
              calibration_folds: Sequence[int] = CALIBRATION_FOLDS,
              workers: int = 2) -> HonestSplit:
    """Training faces of the people in neither the evaluation nor the calibration folds."""
    check_folds(eval_folds, calibration_folds)
    root = Path(lfw_root)
    pairs = read_pairs(root / "pairs.txt")
    held_out = set(eval_folds) | set(calibration_folds)
    excluded = fold_identities(pairs, held_out)
    files = list_face_files(image_folder(root), identities=True, exclude_identities=excluded)
    train = build_face_set(files, cache, workers=workers)
    eval_pairs = [p for p in pairs if p.fold in set(eval_folds)]
    calibration_pairs = [p for p in pairs if p.fold in set(calibration_folds)]
    check_disjoint(train.files, eval_pairs + calibration_pairs)
    return HonestSplit(train, eval_pairs, sorted(eval_folds), excluded, calibration_pairs,
                       sorted(calibration_folds))


def eval_crops(pairs: Sequence[Pair], cache: str | Path, workers: int = 2) -> tuple[
        np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Aligned crops of every image in ``pairs`` and, per pair, the two row indices + labels."""
    paths = sorted({str(p.probe) for p in pairs} | {str(p.gallery) for p in pairs})
    fs = build_face_set([("", Path(p)) for p in paths], cache, workers=workers)
    row = {f: i for i, f in enumerate(fs.files)}
    missing = [p for p in paths if p not in row]
    if missing:
        raise ValueError(
            f"{len(missing)} evaluation images could not be aligned, e.g. {missing[0]}")
    a = np.array([row[str(p.probe)] for p in pairs])
    b = np.array([row[str(p.gallery)] for p in pairs])
    same = np.array([p.same for p in pairs])
    return np.asarray(fs.crops), a, b, same


def embed_crops(model: Callable[[torch.Tensor], torch.Tensor], crops: np.ndarray,
                flip: bool = False, batch_size: int = 256) -> torch.Tensor:
    out = []
    device = next(iter(model.parameters()), torch.empty(0)).device if isinstance(
        model, torch.nn.Module) else torch.device("cpu")
    with torch.inference_mode():
        for s in range(0, len(crops), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(crops[s : s + batch_size])).permute(
                0, 3, 1, 2).float().to(device)
            e = F.normalize(model(x), dim=-1)
            if flip:
                e = F.normalize(e + F.normalize(model(x.flip(-1)), dim=-1), dim=-1)
            out.append(e.cpu())
    return torch.cat(out)


def grayscale_crops(crops: np.ndarray) -> np.ndarray:
    """``(N, 112, 112, 3)`` uint8 crops as grayscale photos (BT.601 luma on every channel)."""
    luma = crops.astype(np.float32) @ np.array(LUMA_WEIGHTS, np.float32)
    return np.repeat(np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


def pair_accuracy(emb: torch.Tensor, a: np.ndarray, b: np.ndarray, same: np.ndarray) -> dict[
        str, float]:
    d = (emb[a] - emb[b]).pow(2).sum(-1).numpy()
    r = kfold_accuracy(d, same, k=10)
    return {"accuracy": r.mean, "accuracy_std": r.std, "threshold": r.overall_threshold}


def training_data(sets: Sequence[FaceSet], teachers: Sequence[np.ndarray]) -> TrainData:
    """Concatenate face sets; labels of different sets never collide (offset per set)."""
    crops, labels, offset = [], [], 0
    for fs in sets:
        lab = np.asarray(fs.labels).copy()
        lab[lab >= 0] += offset
        offset += len(fs.names)
        labels.append(lab)
        crops.append(np.asarray(fs.crops))
    return TrainData(np.concatenate(crops), np.concatenate(labels), np.concatenate(teachers))


def cosface_labels(labels: np.ndarray, min_images: int = 2) -> tuple[np.ndarray, int]:
    """Keep identities with at least ``min_images`` images, renumbered 0..K-1; others -1."""
    ids, counts = np.unique(labels[labels >= 0], return_counts=True)
    keep = ids[counts >= min_images]
    mapping = {int(i): k for k, i in enumerate(keep)}
    return np.array([mapping.get(int(v), -1) for v in labels], dtype=np.int64), len(keep)


__all__ = [
    "HonestSplit", "check_disjoint", "cosface_labels", "embed_crops", "eval_crops",
    "lfw_split", "pair_accuracy", "grayscale_crops", "check_folds", "EVAL_FOLDS",
    "CALIBRATION_FOLDS", "teacher_embeddings", "training_data", "warm_start",
    "check_init", "load_backbone",
]


#: The shipped default model's architecture (see the model card).
DEFAULT_ARCHITECTURE: dict[str, object] = {
    "patch": "conv", "dim": 128, "depth": 6, "heads": 4, "mlp_dim": 512, "dropout": 0.05,
    "attention_scale": "head_dim", "input_norm": "centered", "cosface_s": 32.0,
    "cosface_m": 0.25,
}


def run_default_recipe(*, student_factory: Callable[..., object],
                       teacher_embed: Callable[[np.ndarray], np.ndarray], teacher_name: str,
                       lfw_root: str | Path, extra_folders: Sequence[str | Path], out: str | Path,
                       cache: str | Path, eval_folds: Sequence[int] = EVAL_FOLDS,
                       calibration_folds: Sequence[int] = CALIBRATION_FOLDS,
                       architecture: dict[str, object] | None = None,
                       train_config: dict[str, object] | None = None,
                       max_seconds: float | None = None, progress: bool = True,
                       workers: int = 2, extra_limit: int | None = None,
                       init_from: str | Path | None = None,
                       command: str | None = None) -> dict[str, object]:
    """Align, embed with the teacher, distil, evaluate on held-out LFW folds, save.

    The saved threshold is the best one on the calibration pairs (people never trained on);
    the accuracy is reported on the evaluation pairs, in colour and in grayscale.

    ``init_from``: a saved model folder (``config.json`` + ``model.safetensors``) whose
    backbone weights start this run (a second training stage); its architecture must match,
    and its provenance is kept under ``initialised_from`` so the model card tells the whole
    history. The split is re-checked: a model trained on the evaluation folds is refused.

    ``student_factory(**architecture)`` must return a verifier with a ``model`` (nn.Module
    whose ``forward`` maps 0..255 images to embeddings, optional CosFace ``head``), a
    ``threshold`` attribute, ``config`` (with ``provenance``) and ``save(folder)``.
    """
    import time

    from xfr.training.trainer import TrainConfig, train

    out = Path(out)
    # the starting point is checked before the costly alignment and teacher passes
    check_folds(eval_folds, calibration_folds)
    held_out = sorted(set(eval_folds) | set(calibration_folds))
    previous = None if init_from is None else check_init(init_from, held_out)
    split = lfw_split(lfw_root, cache, eval_folds, calibration_folds, workers=workers)
    sets = [split.train]
    for folder in extra_folders:
        sets.append(build_face_set(list_face_files(folder, limit=extra_limit), cache,
                                   workers=workers))
    # The teacher sees each image once; a mirrored training view keeps the image's target
    # (a face and its mirror image are the same person), halving the teacher's cost.
    teachers = [teacher_embeddings(fs, cache, teacher_name, teacher_embed, mirror=False,
                                   progress=progress) for fs in sets]
    data = training_data(sets, teachers)
    labels, n_classes = cosface_labels(data.labels)
    data = TrainData(data.crops, labels, data.teacher)
    arch = dict(DEFAULT_ARCHITECTURE if architecture is None else architecture)
    # without an identity loss the student carries no head (nothing would train it)
    use_head = float((train_config or {}).get("cosface_weight", 0.05)) > 0
    arch["num_classes"] = n_classes if use_head else 0
    student = student_factory(**arch)
    if init_from is not None:
        load_backbone(student.model, init_from)  # type: ignore[attr-defined]
    crops, a, b, same = eval_crops(split.eval_pairs, cache, workers=workers)
    model = student.model  # type: ignore[attr-defined]

    gray = grayscale_crops(crops)

    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        r = pair_accuracy(embed_crops(m, crops), a, b, same)
        rf = pair_accuracy(embed_crops(m, crops, flip=True), a, b, same)
        rg = pair_accuracy(embed_crops(m, gray), a, b, same)
        return {"heldout_accuracy": r["accuracy"], "heldout_accuracy_flip": rf["accuracy"],
                "heldout_accuracy_gray": rg["accuracy"], "heldout_threshold": r["threshold"]}

    cfg = TrainConfig(out=str(out / "run"), **(train_config or {}))  # type: ignore[arg-type]
    t0 = time.time()
    log = train(model, data, cfg, evaluate=evaluate, progress=progress, max_seconds=max_seconds)
    seconds = time.time() - t0
    final = evaluate(model)
    teacher_acc = pair_accuracy(_teacher_eval(teacher_embed, crops), a, b, same)
    c_crops, c_a, c_b, c_same = eval_crops(split.calibration_pairs, cache, workers=workers)
    c_emb = embed_crops(model, c_crops)
    student.threshold = best_threshold(  # type: ignore[attr-defined]
        (c_emb[c_a] - c_emb[c_b]).pow(2).sum(-1).double().numpy(), c_same)
    machine = ("out", "threads", "extra", "device")  # where it ran, not how it trained
    recipe = {k: v for k, v in asdict(cfg).items() if k not in machine}
    provenance = {
        "trained_by": "xfr train (distillation)", "teacher": teacher_name,
        "teacher_heldout_accuracy": teacher_acc["accuracy"],
        "training_data": {
            "lfw_images": len(split.train), "lfw_identities": len(split.train.names),
            "lfw_excluded_folds": held_out,
            "extra_folders": [str(f) for f in extra_folders],
            "extra_images": int(sum(len(s) for s in sets[1:])),
            "extra_limit_per_folder": extra_limit,
            "skipped_files": int(sum(len(s.skipped) for s in sets)),
        },
        "evaluation": {"dataset": "LFW View 2", "folds": list(split.eval_folds),
                       "pairs": len(split.eval_pairs), "protocol": "10-fold threshold",
                       "calibration_folds": list(split.calibration_folds),
                       "calibration_pairs": len(split.calibration_pairs), **final},
        "recipe": recipe, **({"command": command} if command else {}),
        "steps": log["step"], "completed": log["done"], "training_seconds": seconds,
        "date": time.strftime("%Y-%m-%d"),
    }
    if previous is not None:
        provenance["initialised_from"] = previous
    student.config.provenance.update(provenance)  # type: ignore[attr-defined]
    student.config.threshold = student.threshold  # type: ignore[attr-defined]
    student.save(out / "model")  # type: ignore[attr-defined]
    return provenance


def check_init(folder: str | Path, eval_folds: Sequence[int]) -> dict[str, object]:
    """The provenance of the saved model in ``folder``, checked as a starting point.

    Raises ``FileNotFoundError`` when ``folder`` holds no ``config.json`` and ``ValueError``
    when the saved model held out other LFW folds than ``eval_folds`` (its training data could
    then hold this run's evaluation identities). Reads only the small config, so a recipe can
    call it before any costly work.
    """
    folder = Path(folder)
    cfg_file = folder / "config.json"
    if not cfg_file.exists():
        raise FileNotFoundError(f"not a model folder (no config.json): {folder}")
    prov = dict(json.loads(cfg_file.read_text()).get("architecture", {}).get("provenance", {}))
    excluded = prov.get("training_data", {}).get("lfw_excluded_folds")
    if excluded is None or sorted(excluded) != sorted(eval_folds):
        raise ValueError(
            f"{folder} was trained with LFW folds {excluded} held out, not {sorted(eval_folds)}:"
            " starting from it would leak evaluation identities")
    keep = ("teacher", "training_data", "evaluation", "steps", "training_seconds", "date",
            "hardware", "learning_curve", "initialised_from")
    return {"folder": str(folder), **{k: prov[k] for k in keep if k in prov}}


def load_backbone(model: torch.nn.Module, folder: str | Path) -> None:
    """Copy the weights saved in ``folder`` into ``model``, heads excluded (a head depends on
    the run's identity labels); ``ValueError`` when they do not fit ``model``."""
    from safetensors.torch import load_file

    state = {k: v for k, v in load_file(str(Path(folder) / "model.safetensors")).items()
             if not k.startswith("head.")}
    own = model.state_dict()
    differ = [f"{k} {tuple(v.shape)} here {tuple(own[k].shape)}" for k, v in state.items()
              if k in own and own[k].shape != v.shape]  # same names, another width
    if differ:
        raise ValueError(f"{folder} does not fit this architecture: {len(differ)} shapes differ,"
                         f" e.g. {differ[:3]}")
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("head.")]
    if missing or unexpected:
        raise ValueError(f"{folder} does not fit this architecture: missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}")


def warm_start(model: torch.nn.Module, folder: str | Path,
               eval_folds: Sequence[int]) -> dict[str, object]:
    """:func:`check_init`, then :func:`load_backbone`; returns the saved model's provenance."""
    previous = check_init(folder, eval_folds)
    load_backbone(model, folder)
    return previous


def _teacher_eval(teacher_embed: Callable[[np.ndarray], np.ndarray],
                  crops: np.ndarray) -> torch.Tensor:
    """Teacher embeddings (image + mirror) of the evaluation crops."""
    out = []
    for s in range(0, len(crops), 64):
        x = np.ascontiguousarray(crops[s : s + 64].transpose(0, 3, 1, 2), dtype=np.float32)
        e = teacher_embed(x) + teacher_embed(np.ascontiguousarray(x[..., ::-1]))
        out.append(torch.from_numpy(e))
    return F.normalize(torch.cat(out), dim=-1)
