"""The honest LFW recipe: train on identities outside the evaluation folds, evaluate on them.

LFW View 2 folds are identity-disjoint. With evaluation folds E (default 9 and 10: 1,200
pairs), training uses every LFW image whose person appears in no pair of E (including people in
no pair at all), plus any extra folders of aligned faces (FairFace). :func:`check_disjoint`
proves the split and the model card records it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from xfr.data.lfw import Pair, fold_identities, identity_of, image_folder, read_pairs
from xfr.evaluation.verification import kfold_accuracy
from xfr.training.face_set import FaceSet, build_face_set, list_face_files, teacher_embeddings
from xfr.training.trainer import TrainData


@dataclass
class HonestSplit:
    train: FaceSet
    eval_pairs: list[Pair]
    eval_folds: list[int]
    eval_identities: set[str]


def check_disjoint(train_files: Sequence[str], eval_pairs: Sequence[Pair]) -> None:
    """Raise ``ValueError`` if any training image's person appears in an evaluation pair."""
    eval_names = {identity_of(p.probe) for p in eval_pairs} | {
        identity_of(p.gallery) for p in eval_pairs}
    leaked = sorted({Path(f).parent.name for f in train_files} & eval_names)
    if leaked:
        raise ValueError(f"{len(leaked)} evaluation identities in the training set, e.g. {leaked[:5]}")


def lfw_split(lfw_root: str | Path, cache: str | Path, eval_folds: Sequence[int] = (9, 10),
              workers: int = 2) -> HonestSplit:
    root = Path(lfw_root)
    pairs = read_pairs(root / "pairs.txt")
    folds = set(eval_folds)
    excluded = fold_identities(pairs, folds)
    files = list_face_files(image_folder(root), identities=True, exclude_identities=excluded)
    train = build_face_set(files, cache, workers=workers)
    eval_pairs = [p for p in pairs if p.fold in folds]
    check_disjoint(train.files, eval_pairs)
    return HonestSplit(train, eval_pairs, sorted(folds), excluded)


def eval_crops(pairs: Sequence[Pair], cache: str | Path, workers: int = 2) -> tuple[
        np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Aligned crops of every image in ``pairs`` and, per pair, the two row indices + labels."""
    paths = sorted({str(p.probe) for p in pairs} | {str(p.gallery) for p in pairs})
    fs = build_face_set([("", Path(p)) for p in paths], cache, workers=workers)
    row = {f: i for i, f in enumerate(fs.files)}
    missing = [p for p in paths if p not in row]
    if missing:
        raise ValueError(f"{len(missing)} evaluation images could not be aligned, e.g. {missing[0]}")
    a = np.array([row[str(p.probe)] for p in pairs])
    b = np.array([row[str(p.gallery)] for p in pairs])
    same = np.array([p.same for p in pairs])
    return np.asarray(fs.crops), a, b, same


def embed_crops(model: Callable[[torch.Tensor], torch.Tensor], crops: np.ndarray,
                flip: bool = False, batch_size: int = 256) -> torch.Tensor:
    out = []
    with torch.inference_mode():
        for s in range(0, len(crops), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(crops[s : s + batch_size])).permute(
                0, 3, 1, 2).float()
            e = F.normalize(model(x), dim=-1)
            if flip:
                e = F.normalize(e + F.normalize(model(x.flip(-1)), dim=-1), dim=-1)
            out.append(e)
    return torch.cat(out)


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
    "lfw_split", "pair_accuracy", "teacher_embeddings", "training_data",
]
