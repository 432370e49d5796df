"""Complete a trained model folder: figures for the model card, then ``MODEL_CARD.md``.

Sets the shipped threshold on the calibration pairs: LFW View 2 folds whose people no training
stage saw and whose pairs are never reported (``xfr train --calibration-folds``, default 7-8;
:func:`calibration_folds` refuses a model where that does not hold). A threshold chosen on
people the model trained on is too lax for everyone else: their photos lie closer together.
Then adds to ``config.json``'s provenance the accuracy on the evaluation pairs at that
threshold and by the 10-fold protocol, in colour and in grayscale (the fixed 200-pair sample
that the test suite re-measures included), the parameter count, the hardware and, given the
model it replaces, that model's figures as history; and renders the card.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def pair_distances(verifier: object, pairs: Sequence[Pair], cache: str | Path,
                   grayscale: bool = False) -> np.ndarray:
    """Distances of ``pairs`` under ``verifier`` (aligned crops cached in ``cache``); with
    ``grayscale`` both photos are first turned grayscale."""
    import torch

    from xfr.api import to_tensor
    from xfr.training.recipe import eval_crops, grayscale_crops

    crops, a, b, _ = eval_crops(pairs, cache)
    if grayscale:
        crops = grayscale_crops(crops)
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
    distillation loss, held-out accuracy: as is, with the mirror image, in grayscale)."""
    import torch

    history = torch.load(checkpoint, map_location="cpu", weights_only=False).get("history", [])
    keys = ("step", "epoch", "loss", "heldout_accuracy", "heldout_accuracy_flip",
            "heldout_accuracy_gray")
    return [
        {k: round(float(h[k]), 5) for k in keys if h.get(k) is not None}
        for h in history
        if "heldout_accuracy" in h
    ]


def calibration_folds(provenance: dict[str, Any]) -> list[int]:
    """The calibration folds of a trained model, checked against every training stage.

    ``ValueError`` when the model names none, when they overlap its evaluation folds (the
    threshold would be chosen on the reported pairs) or when any training stage did not hold
    them out (the threshold would be chosen on people the model trained on).
    """
    from xfr.training.model_card import stages
    from xfr.training.recipe import check_folds

    ev = provenance.get("evaluation", {})
    folds, calibration = list(ev.get("folds", [])), list(ev.get("calibration_folds") or [])
    if not calibration:
        raise ValueError("the model names no calibration folds: its threshold would be chosen "
                         "on people it trained on or on the reported pairs (retrain with "
                         "xfr train --calibration-folds)")
    check_folds(folds, calibration)
    for i, stage in enumerate(stages(provenance), 1):
        held_out = set(stage.get("training_data", {}).get("lfw_excluded_folds", []))
        seen = sorted(set(calibration) - held_out)
        if seen:
            raise ValueError(f"training stage {i} did not hold out calibration folds {seen}: "
                             "the threshold would be chosen on people the model trained on")
    return calibration


def summary(config: dict[str, Any]) -> dict[str, Any]:
    """The figures of a shipped model that its successor's card keeps as history."""
    from xfr.training.model_card import stages

    arch = config["architecture"]
    p = arch.get("provenance", {})
    ev = p.get("evaluation", {})
    chain = stages(p)
    keep = ("heldout_accuracy", "accuracy_at_shipped_threshold", "threshold_chosen_on",
            "heldout_accuracy_gray", "accuracy_at_shipped_threshold_gray", "folds")
    return {"date": p.get("date"), "threshold": arch.get("threshold"),
            "steps": sum(int(st.get("steps", 0)) for st in chain),
            "training_seconds": sum(float(st.get("training_seconds", 0)) for st in chain),
            "lfw_excluded_folds": p.get("training_data", {}).get("lfw_excluded_folds"),
            **{k: ev[k] for k in keep if k in ev}}


def finalize(
    model_dir: str | Path,
    lfw_root: str | Path,
    cache: str | Path,
    checkpoint: str | Path | None = None,
    previous_model: str | Path | None = None,
) -> dict[str, object]:
    """Set the threshold, measure, record (``checkpoint``: the run's learning curve;
    ``previous_model``: the model this one replaces, measured here in grayscale too and kept
    as history), write the card; see the module docstring."""
    from xfr.api import load_verifier

    model_dir = Path(model_dir)
    cfg_file = model_dir / "config.json"
    config = json.loads(cfg_file.read_text())
    prov = config["architecture"].setdefault("provenance", {})
    ev = prov.setdefault("evaluation", {})
    calibration = calibration_folds(prov)  # checked before any model pass
    folds = ev.get("folds", [9, 10])
    verifier = load_verifier(str(model_dir))
    pairs = read_pairs(Path(lfw_root) / "pairs.txt")
    held = [p for p in pairs if p.fold in folds]
    calib = [p for p in pairs if p.fold in calibration]
    # one pass over every pair; the 200-pair sample is a subset of the held-out pairs
    d_all = pair_distances(verifier, held + calib, cache)
    d_held, d_calib = d_all[: len(held)], d_all[len(held) :]
    same = np.array([p.same for p in held])
    calib_same = np.array([p.same for p in calib])
    th = best_threshold(d_calib, calib_same)
    config["architecture"]["threshold"] = th
    people = {p.probe.parent.name for p in calib} | {p.gallery.parent.name for p in calib}
    ev["threshold_chosen_on"] = (
        f"LFW View 2 folds {calibration} ({len(calib)} pairs of {len(people)} people never "
        "trained on and never reported), best accuracy")
    ev["calibration_accuracy"] = accuracy_at(d_calib, calib_same, th)
    ev["accuracy_at_shipped_threshold"] = accuracy_at(d_held, same, th)
    ev["heldout_accuracy"] = kfold_accuracy(d_held, same).mean
    # the 10-fold protocol on every pair of people never trained on (evaluation and
    # calibration folds together): comparable with models reported on more folds
    unseen = sorted(set(folds) | set(calibration))
    ev["unseen_folds"] = unseen
    ev["unseen_accuracy"] = kfold_accuracy(d_all, np.concatenate([same, calib_same])).mean
    d_gray = pair_distances(verifier, held, cache, grayscale=True)
    ev["heldout_accuracy_gray"] = kfold_accuracy(d_gray, same).mean
    ev["accuracy_at_shipped_threshold_gray"] = accuracy_at(d_gray, same, th)
    row = {id(p): i for i, p in enumerate(held)}
    sample = [row[id(p)] for p in fixed_sample(pairs, folds)]
    ev["sample200_accuracy"] = accuracy_at(d_held[sample], same[sample], th)
    ev["sample200_accuracy_gray"] = accuracy_at(d_gray[sample], same[sample], th)
    prov["parameters"] = sum(p.numel() for p in verifier.backbone.parameters())  # type: ignore[attr-defined]
    prov["hardware"] = f"{os.cpu_count()} CPU cores ({platform.machine()}), no GPU"
    if checkpoint is not None:
        prov["learning_curve"] = learning_curve(checkpoint)
    if previous_model is not None:
        prov["history"] = previous_history(previous_model, held, same, cache)
    prov.setdefault("licences", {"FairFace": model_card.FAIRFACE_ATTRIBUTION})
    cfg_file.write_text(json.dumps(config, indent=2))
    model_card.write(model_dir)
    return prov


def previous_history(folder: str | Path, held: Sequence[Pair], same: np.ndarray,
                     cache: str | Path) -> list[dict[str, Any]]:
    """The replaced model's figures (its grayscale accuracy on ``held`` measured now, at its
    own threshold), followed by the history it carried."""
    from xfr.api import load_verifier

    old = json.loads((Path(folder) / "config.json").read_text())
    entry = summary(old)
    if "accuracy_at_shipped_threshold_gray" not in entry:
        d_gray = pair_distances(load_verifier(str(folder)), held, cache, grayscale=True)
        entry["heldout_accuracy_gray"] = kfold_accuracy(d_gray, same).mean
        entry["accuracy_at_shipped_threshold_gray"] = accuracy_at(
            d_gray, same, float(old["architecture"]["threshold"]))
    return [entry, *old["architecture"].get("provenance", {}).get("history", [])]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m xfr.training.finalize MODEL_DIR [--lfw ROOT] [--cache DIR]
    [--checkpoint FILE] [--previous MODEL_DIR]``."""
    import argparse

    from xfr.data.lfw import default_lfw_root

    parser = argparse.ArgumentParser(prog="python -m xfr.training.finalize",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", help="the model folder written by xfr train")
    parser.add_argument("--lfw", help="LFW root (default: $XFR_LFW or ../shared/data/lfw)")
    parser.add_argument("--cache", help="aligned-crop cache (default: MODEL_DIR/../cache)")
    parser.add_argument("--checkpoint", help="the run's checkpoint (learning curve); default: "
                        "MODEL_DIR/../run/checkpoint.pt when it exists")
    parser.add_argument("--previous", help="the model folder this one replaces (history)")
    args = parser.parse_args(argv)
    model_dir = Path(args.model_dir)
    lfw = Path(args.lfw) if args.lfw else default_lfw_root()
    if lfw is None:
        parser.error("LFW not found: pass --lfw ROOT")
    checkpoint = args.checkpoint or model_dir.parent / "run" / "checkpoint.pt"
    prov = finalize(model_dir, lfw, args.cache or model_dir.parent / "cache",
                    checkpoint=checkpoint if Path(checkpoint).exists() else None,
                    previous_model=args.previous)
    print(json.dumps(prov.get("evaluation"), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
