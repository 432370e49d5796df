"""Complete a trained model folder: figures for the model card, then ``MODEL_CARD.md``.

Sets the shipped threshold without looking at the held-out pairs: the best threshold on the
LFW View 2 pairs of the *other* folds (people the model was trained on; `xfr train` picks its
provisional threshold on the held-out folds, which would make the accuracy at the shipped
threshold optimistic). Then adds to ``config.json``'s provenance the held-out accuracy at that
threshold (all evaluation pairs, and the fixed 200-pair sample that the test suite
re-measures), the parameter count and the hardware, and renders the card.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from xfr.data.lfw import Pair, read_pairs
from xfr.evaluation.verification import accuracy_at, best_threshold, kfold_accuracy
from xfr.training import model_card


def fixed_sample(pairs: Sequence[Pair], folds: Sequence[int], n: int = 200,
                 seed: int = 0) -> list[Pair]:
    """A fixed, balanced random sample of ``n`` pairs of ``folds`` (n/2 positive, n/2 negative)."""
    rng = np.random.default_rng(seed)
    pos = [p for p in pairs if p.fold in folds and p.same]
    neg = [p for p in pairs if p.fold in folds and not p.same]
    pick = [pos[i] for i in sorted(rng.choice(len(pos), n // 2, replace=False))]
    pick += [neg[i] for i in sorted(rng.choice(len(neg), n - n // 2, replace=False))]
    return pick


def pair_distances(verifier: object, pairs: Sequence[Pair], cache: str | Path) -> np.ndarray:
    """Distances of ``pairs`` under ``verifier`` (aligned crops cached in ``cache``)."""
    import torch

    from xfr.api import to_tensor
    from xfr.training.recipe import eval_crops

    crops, a, b, _ = eval_crops(pairs, cache)
    emb = torch.cat(
        [
            verifier.embed(to_tensor(crops[s : s + 512]))  # type: ignore[attr-defined]
            for s in range(0, len(crops), 512)
        ]
    )
    d = verifier.distance(emb[a], emb[b])  # type: ignore[attr-defined]
    return d.double().cpu().numpy()


def learning_curve(checkpoint: str | Path) -> list[dict[str, float]]:
    """The held-out evaluations logged in a training checkpoint's history (step, epoch,
    distillation loss, held-out accuracy with and without the mirror image)."""
    import torch

    history = torch.load(checkpoint, map_location="cpu", weights_only=False).get("history", [])
    keys = ("step", "epoch", "loss", "heldout_accuracy", "heldout_accuracy_flip")
    return [
        {k: round(float(h[k]), 5) for k in keys if h.get(k) is not None}
        for h in history
        if "heldout_accuracy" in h
    ]


def finalize(
    model_dir: str | Path,
    lfw_root: str | Path,
    cache: str | Path,
    checkpoint: str | Path | None = None,
) -> dict[str, object]:
    """Set the threshold, measure, record (``checkpoint``: the run's learning curve), write
    the card; see the module docstring."""
    from xfr.api import load_verifier

    model_dir = Path(model_dir)
    cfg_file = model_dir / "config.json"
    config = json.loads(cfg_file.read_text())
    prov = config["architecture"].setdefault("provenance", {})
    folds = prov.get("evaluation", {}).get("folds", [9, 10])
    verifier = load_verifier(str(model_dir))
    pairs = read_pairs(Path(lfw_root) / "pairs.txt")
    held = [p for p in pairs if p.fold in folds]
    side = [p for p in pairs if p.fold is not None and p.fold not in folds]
    # one pass over every pair; the 200-pair sample is a subset of the held-out pairs
    d_all = pair_distances(verifier, held + side, cache)
    d_held, d_side = d_all[: len(held)], d_all[len(held) :]
    same = np.array([p.same for p in held])
    ev = prov.setdefault("evaluation", {})
    if side:
        side_same = np.array([p.same for p in side])
        th = best_threshold(d_side, side_same)
        config["architecture"]["threshold"] = th
        ev["threshold_chosen_on"] = (
            f"LFW View 2 folds {sorted({p.fold for p in side})} ({len(side)} pairs, training "
            "identities), best accuracy"
        )
        ev["threshold_accuracy_on_training_folds"] = accuracy_at(d_side, side_same, th)
    else:
        th = float(config["architecture"]["threshold"])
    ev["accuracy_at_shipped_threshold"] = accuracy_at(d_held, same, th)
    ev["heldout_accuracy"] = kfold_accuracy(d_held, same).mean
    row = {id(p): i for i, p in enumerate(held)}
    sample = [row[id(p)] for p in fixed_sample(pairs, folds)]
    ev["sample200_accuracy"] = accuracy_at(d_held[sample], same[sample], th)
    prov["parameters"] = sum(p.numel() for p in verifier.backbone.parameters())  # type: ignore[attr-defined]
    prov["hardware"] = f"{os.cpu_count()} CPU cores ({platform.machine()}), no GPU"
    if checkpoint is not None:
        prov["learning_curve"] = learning_curve(checkpoint)
    prov.setdefault("licences", {"FairFace": model_card.FAIRFACE_ATTRIBUTION})
    cfg_file.write_text(json.dumps(config, indent=2))
    model_card.write(model_dir)
    return prov
