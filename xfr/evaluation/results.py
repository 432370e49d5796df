"""From cached per-pair records to the numbers of the report (paper Sec. 4): verification
accuracy, Table 1 and the deletion/insertion curves with their areas, as one JSON-ready dict.
"""

from __future__ import annotations

import datetime as _dt
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from xfr.evaluation.bootstrap import bootstrap_ci
from xfr.evaluation.deletion import auc, rate_curve
from xfr.evaluation.table1 import GROUPINGS, PAPER_LFW, PairScores, table1
from xfr.evaluation.verification import accuracy_at, kfold_accuracy

POLARITIES = {"positive": "recall (true positives still accepted)",
              "negative": "TNR (true negatives still rejected)"}


def stratified_folds(same: np.ndarray, k: int = 10) -> np.ndarray:
    """Fold ids giving genuine and impostor pairs in turn to ``k`` folds (file order)."""
    same = np.asarray(same, bool)
    folds = np.empty(len(same), dtype=np.int64)
    for label in (True, False):
        idx = np.flatnonzero(same == label)
        folds[idx] = np.arange(len(idx)) % k
    return folds


def accuracy_summary(distances: np.ndarray, same: np.ndarray, lfw_folds: np.ndarray,
                     threshold: float, k: int = 10) -> dict[str, Any]:
    """k-fold threshold-selection accuracy (LFW's folds when ``k`` of them are present, else
    ``k`` stratified sub-folds of the selected pairs), and the accuracy, TPR and TNR at the
    verifier's own threshold, overall and per LFW fold."""
    distances, same = np.asarray(distances, float), np.asarray(same, bool)
    lfw_folds = np.asarray(lfw_folds)
    present = sorted(int(f) for f in np.unique(lfw_folds) if f > 0)
    out: dict[str, Any] = {"pairs": len(distances), "genuine": int(same.sum()),
                           "impostor": int((~same).sum())}
    if len(present) >= k and len(present) == len(np.unique(lfw_folds)):
        folds, how = lfw_folds, f"the pair list's {len(present)} folds"
    else:
        folds, how = stratified_folds(same, k), (
            f"{k} stratified sub-folds of the selected pairs (genuine and impostor pairs dealt "
            "in turn)")
    if min(int(same.sum()), int((~same).sum())) >= k:
        r = kfold_accuracy(distances, same, folds=folds)
        out["kfold"] = {"protocol": how, "accuracies": r.accuracies, "thresholds": r.thresholds,
                        "mean": r.mean, "std": r.std, "best_threshold_all": r.overall_threshold}
    else:
        out["kfold"] = {"protocol": how, "skipped": f"fewer than {k} genuine or impostor pairs"}

    def at(mask: np.ndarray) -> dict[str, Any]:
        d, s = distances[mask], same[mask]
        acc = accuracy_at(d, s, threshold) if len(d) else float("nan")
        tpr = float(np.mean(d[s] < threshold)) if s.any() else float("nan")
        tnr = float(np.mean(d[~s] >= threshold)) if (~s).any() else float("nan")
        return {"pairs": int(mask.sum()), "accuracy": acc, "tpr": tpr, "tnr": tnr}

    out["at_threshold"] = {"threshold": threshold, "all": at(np.ones(len(same), bool)),
                           "folds": {str(f): at(lfw_folds == f) for f in present}}
    if len(present) >= 2:
        cross = {}
        for f in present:
            test = lfw_folds == f
            r = kfold_accuracy(distances, same, folds=test.astype(np.int64))
            cross[str(f)] = {"threshold": r.thresholds[1], "accuracy": r.accuracies[1]}
        out["per_fold_cross"] = cross
    return out


def curve_summary(fractions: np.ndarray, distances: list[list[float]], threshold: float,
                  positive: bool, *, n_boot: int, seed: int) -> dict[str, Any]:
    """Mean rate curve, its area and a bootstrap CI of the area over pairs."""
    if not distances:
        return {"n": 0}
    outcome = rate_curve(np.asarray(distances), threshold, positive)
    per_pair = auc(fractions, outcome)
    ci = bootstrap_ci(per_pair, n_boot=n_boot, seed=seed)
    return {"n": len(distances), "curve": outcome.mean(axis=0).tolist(), "auc": ci.estimate,
            "auc_low": ci.low, "auc_high": ci.high}


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent, timeout=10,
                              check=True).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def model_record(spec: Any, verifier: Any, fingerprint: str) -> dict[str, Any]:
    """What identifies the model: how it was named, its kind, threshold, weights' hash, config."""
    config = getattr(verifier, "config", None)
    doc: dict[str, Any] = {"spec": str(spec), "kind": getattr(verifier, "name", None),
                           "threshold": float(verifier.threshold), "fingerprint": fingerprint}
    if config is not None:
        from dataclasses import asdict, is_dataclass

        doc["config"] = asdict(config) if is_dataclass(config) else str(config)
    return doc


def summarise(ev: Any, records: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """All numbers of the report from an :class:`~xfr.evaluation.runner.Evaluation` that has
    run and its units' records ``{unit: {pair key: record}}``."""
    import torch

    import xfr

    s = ev.s
    th = float(ev.verifier.threshold)
    infos = ev.infos
    every = ev.all_infos
    fractions = np.asarray(ev.fractions)
    result: dict[str, Any] = {
        "command": s.command,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "xfr": {"version": xfr.__version__, "commit": _git_commit()},
        "platform": {"python": platform.python_version(), "torch": torch.__version__,
                     "machine": platform.machine()},
        "model": model_record(s.verifier, ev.verifier, ev.fingerprint),
        "pairs": {"file": str(s.pairs), "root": str(s.root), "format": s.format,
                  "folds": sorted(s.folds) if s.folds else None, "limit": s.limit,
                  "selected": len(every) + sum(1 for x in ev.skipped if "pair" in x),
                  "verified": len(every), "evaluated": len(infos),
                  "limit_rule": "seeded random subset, half genuine and half impostor pairs",
                  "true_positives": len(ev.tp),
                  "true_negatives": len(ev.tn), "skipped": ev.skipped},
        "coverage": ev.coverage, "report_only": s.report_only,
        "seed": s.seed, "methods": list(s.methods), "generators": list(s.generators),
        "options": s.options, "curves_computed": list(s.curves),
        "fractions": fractions.tolist(), "n_boot": s.n_boot,
        "baseline_subset": {"limit": s.baseline_limit,
                            "true_positives": sum(1 for i in ev.subset if i.same),
                            "true_negatives": sum(1 for i in ev.subset if not i.same),
                            "keys": [i.key for i in ev.subset]},
    }
    result["accuracy"] = accuracy_summary(
        np.array([i.distance for i in every]), np.array([i.same for i in every]),
        np.array([i.pair.fold for i in every]), th)

    # Table 1
    t1: dict[str, Any] = {"paper_lfw_vit_lrp": {f"{d}/{m}": v for (d, m), v in PAPER_LFW.items()}}
    if "paper" in s.methods:
        for grouping in GROUPINGS:
            t1[grouping] = {}
            for g in s.generators:
                recs = records.get(f"paper-{g}", {})
                # the decision the explainer itself took (it embedded the pair afresh)
                scores = [PairScores(i.same, recs[i.key].get("decision", i.decision(th)),
                                     recs[i.key]["scores"]) for i in infos if i.key in recs]
                cells = table1(scores, grouping=grouping, n_boot=s.n_boot, seed=s.seed)
                t1[grouping][g] = {f"{d}/{m}": c.to_dict() for (d, m), c in cells.items()}
    result["table1"] = t1

    # curves: which records hold which curve method
    sources: dict[str, str] = {}
    for g in s.generators:
        if "paper" in s.methods:
            sources[f"paper-{g}-oim"] = f"paper-{g}"
        if "attention" in s.methods:
            sources[f"attention-{g}"] = f"paper-{g}"
    if "random" in s.methods:
        sources["random"] = "random"
    baselines = [m for m in s.methods if m not in ("paper", "attention", "random")]
    for m in baselines:
        sources[m] = m

    def curves_over(pairs: list[Any], methods: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {mode: {pol: {} for pol in POLARITIES} for mode in s.curves}
        for pol in POLARITIES:
            group = [i for i in pairs if i.same == (pol == "positive")]
            for name in methods:
                recs = records.get(sources[name], {})
                have = [recs[i.key]["curves"][name] for i in group
                        if i.key in recs and name in recs[i.key].get("curves", {})]
                for mode in s.curves:
                    dists = [h[mode] for h in have if mode in h]
                    summary = curve_summary(fractions, dists, th, pol == "positive",
                                            n_boot=s.n_boot, seed=s.seed)
                    summary["missing"] = len(group) - len(dists)
                    out[mode][pol][name] = summary
        return out

    result["curves"] = {"all": curves_over(ev.curve_pairs,
                                           [m for m in sources if m not in baselines])}
    if baselines:
        result["curves"]["subset"] = curves_over(ev.subset, list(sources))
    return result


__all__ = ["POLARITIES", "accuracy_summary", "curve_summary", "model_record",
           "stratified_folds", "summarise"]
