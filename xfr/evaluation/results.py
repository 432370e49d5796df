"""From cached per-pair records to the numbers of the report (paper Sec. 4): verification
accuracy, Table 1 and the deletion/insertion curves with their areas, as one JSON-ready dict.

Every curve is read two ways from the distances cached per pair (:mod:`.deletion`): the
*rate* (recall of true positives, TNR of true negatives; ``result["curves"]``) and the
*continuous* mean normalised distance to the unperturbed pair, ``(d_k - d_0) / threshold``
(``result["continuous"]``). Which area is better for each is
:data:`xfr.evaluation.deletion.BETTER` (``result["directions"]``).

``result["differences"]`` compares every method with every reference that ran
(:data:`~xfr.evaluation.references.REFERENCES`) pair by pair: the mean over the pairs both have
of ``AUC(method) - AUC(reference)`` with a bootstrap 95 % CI over those pairs, and a verdict
(:func:`paired_difference`): the method *beats* the reference when the whole CI lies on the
better side of 0, *is worse* when it lies on the worse side, otherwise no difference is shown.
"""

from __future__ import annotations

import datetime as _dt
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from xfr.evaluation.bootstrap import bootstrap_ci
from xfr.evaluation.deletion import (
    KINDS,
    auc,
    better,
    continuous_curve,
    rate_curve,
    unperturbed_step,
)
from xfr.evaluation.references import REFERENCES
from xfr.evaluation.table1 import GROUPINGS, PAPER_LFW, PairScores, table1
from xfr.evaluation.verification import accuracy_at, kfold_accuracy
from xfr.interfaces.vocabulary import is_positive

POLARITIES = {"positive": "recall (true positives still accepted)",
              "negative": "TNR (true negatives still rejected)"}
#: Fewest common pairs for a verdict on a paired difference; below, the difference is given
#: but no verdict (a percentile bootstrap over a handful of pairs claims too much).
MIN_PAIRS_FOR_VERDICT = 10


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
        tpr = float(np.mean(is_positive(d[s], threshold))) if s.any() else float("nan")
        tnr = float(np.mean(~is_positive(d[~s], threshold))) if (~s).any() else float("nan")
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


def per_pair_curves(kind: str, fractions: np.ndarray, distances: np.ndarray,
                    unperturbed: np.ndarray, threshold: float, positive: bool,
                    mode: str) -> np.ndarray:
    """Per-pair curve ``(N, S)`` of ``kind`` from distances ``(N, S)``: the 0/1 outcome
    (``"rate"``) or ``(d_k - d_0) / threshold`` (``"continuous"``). ``d_0`` is the curve's own
    unperturbed step when the fractions include it (deletion 0, insertion 1), else
    ``unperturbed`` ``(N,)`` (the pair's distance from the verification pass)."""
    d = np.asarray(distances, dtype=np.float64)
    if kind == "rate":
        return rate_curve(d, threshold, positive)
    if kind != "continuous":
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    step = unperturbed_step(fractions, mode)
    d0 = d[:, step] if step is not None else np.asarray(unperturbed, dtype=np.float64)
    return continuous_curve(d, d0, threshold)


def summary_of(fractions: np.ndarray, curves: np.ndarray, *, n_boot: int,
               seed: int) -> tuple[dict[str, Any], np.ndarray]:
    """Mean of per-pair curves ``(N, S)``, the mean area with its bootstrap CI over pairs, and
    the per-pair areas ``(N,)``."""
    if not len(curves):
        return {"n": 0}, np.zeros(0)
    per_pair = auc(fractions, curves)
    ci = bootstrap_ci(per_pair, n_boot=n_boot, seed=seed)
    return {"n": len(curves), "curve": curves.mean(axis=0).tolist(), "auc": ci.estimate,
            "auc_low": ci.low, "auc_high": ci.high}, per_pair


def curve_summary(fractions: np.ndarray, distances: list[list[float]], threshold: float,
                  positive: bool, *, n_boot: int, seed: int, kind: str = "rate",
                  mode: str = "deletion", unperturbed: list[float] | None = None
                  ) -> dict[str, Any]:
    """Mean curve of ``kind`` (:func:`per_pair_curves`), its area and a bootstrap CI of the
    area over pairs."""
    if not distances:
        return {"n": 0}
    d0 = np.asarray(unperturbed if unperturbed is not None else [np.nan] * len(distances))
    curves = per_pair_curves(kind, fractions, np.asarray(distances), d0, threshold, positive,
                             mode)
    return summary_of(fractions, curves, n_boot=n_boot, seed=seed)[0]


def paired_difference(method: dict[str, float], reference: dict[str, float], direction: str,
                      *, n_boot: int, seed: int,
                      min_pairs: int = MIN_PAIRS_FOR_VERDICT) -> dict[str, Any]:
    """Paired difference of per-pair AUCs ``{pair key: auc}``, over the pairs both have.

    ``delta`` is the mean of ``AUC(method) - AUC(reference)`` with its bootstrap 95 % CI over
    those pairs. ``direction`` (``"lower"``/``"higher"``: which AUC is better,
    :func:`xfr.evaluation.deletion.better`) gives the ``verdict``: ``"better"`` when the CI
    lies entirely on the better side of 0, ``"worse"`` when entirely on the worse side,
    ``"no difference shown"`` otherwise, and ``"too few pairs"`` below ``min_pairs``.
    """
    if direction not in ("lower", "higher"):
        raise ValueError(f"direction must be 'lower' or 'higher', got {direction!r}")
    common = sorted(set(method) & set(reference))
    out: dict[str, Any] = {"n": len(common), "better": direction}
    if not common:
        return {**out, "delta": None, "low": None, "high": None, "verdict": "no common pairs"}
    diff = np.array([method[k] - reference[k] for k in common])
    ci = bootstrap_ci(diff, n_boot=n_boot, seed=seed)
    sign = -1.0 if direction == "lower" else 1.0  # > 0 on the better side
    if len(common) < min_pairs:
        verdict = "too few pairs"
    elif min(sign * ci.low, sign * ci.high) > 0:
        verdict = "better"
    elif max(sign * ci.low, sign * ci.high) < 0:
        verdict = "worse"
    else:
        verdict = "no difference shown"
    return {**out, "delta": ci.estimate, "low": ci.low, "high": ci.high, "verdict": verdict}


def difference_words(method: str, reference: str, d: dict[str, Any], digits: int = 3) -> str:
    """``"X beats random-shared (Δ=-0.120, CI [-0.150, -0.090], n=40)"`` and the like."""
    if d["delta"] is None:
        return f"{method} vs {reference}: no pairs in common"
    nums = (f"(Δ={d['delta']:.{digits}f}, CI [{d['low']:.{digits}f}, {d['high']:.{digits}f}], "
            f"n={d['n']})")
    if d["verdict"] == "better":
        return f"{method} beats {reference} {nums}"
    if d["verdict"] == "worse":
        return f"{method} is worse than {reference} {nums}"
    if d["verdict"] == "too few pairs":
        return (f"{method} vs {reference}: no verdict, fewer than {MIN_PAIRS_FOR_VERDICT} "
                f"pairs {nums}")
    return f"{method} vs {reference}: no difference shown {nums}"


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

        doc["config"] = (asdict(config) if is_dataclass(config) and not isinstance(config, type)
                         else str(config))
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
        "baseline_subset": {"limit": s.baseline_limit, "method_limits": dict(s.method_limits),
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

    # curves: which records hold which curve label, and what produced it
    sources = ev.curve_sources()
    result["labels"] = {label: {"method": src.method, "unit": src.unit,
                                "configuration": src.configuration,
                                "pairs": "baselines' subset" if src.baseline
                                else "every true positive and true negative"}
                        for label, src in sources.items()}
    result["directions"] = {kind: {mode: {pol: better(kind, mode, pol) for pol in POLARITIES}
                                   for mode in s.curves} for kind in KINDS}
    unperturbed = {i.key: i.distance for i in ev.all_infos}

    def curves_over(pairs: list[Any], labels: list[str]) -> dict[str, Any]:
        """``{kind: {mode: {decision: {label: summary}}}}`` and the differences."""
        out: dict[str, Any] = {kind: {mode: {pol: {} for pol in POLARITIES} for mode in s.curves}
                               for kind in KINDS}
        per_pair: dict[tuple[str, str, str, str], dict[str, float]] = {}
        for pol in POLARITIES:
            group = [i for i in pairs if i.same == (pol == "positive")]
            for name in labels:
                src = sources[name]
                recs = records.get(src.unit, {})
                have = [(i.key, src.curves(recs[i.key])) for i in group if i.key in recs]
                have = [(k, c) for k, c in have if c is not None]
                for mode in s.curves:
                    keys = [k for k, c in have if mode in c]
                    dists = np.array([c[mode] for _, c in have if mode in c], dtype=np.float64)
                    for kind in KINDS:
                        curves = per_pair_curves(
                            kind, fractions, dists.reshape(len(keys), len(fractions)),
                            np.array([unperturbed[k] for k in keys]), th, pol == "positive",
                            mode)
                        summary, areas = summary_of(fractions, curves, n_boot=s.n_boot,
                                                    seed=s.seed)
                        summary["missing"] = len(group) - len(keys)
                        out[kind][mode][pol][name] = summary
                        per_pair[(kind, mode, pol, name)] = dict(zip(keys, areas.tolist(),
                                                                     strict=True))
        refs = [m for m in REFERENCES if m in labels]
        diffs: dict[str, Any] = {kind: {mode: {pol: {} for pol in POLARITIES}
                                        for mode in s.curves} for kind in KINDS}
        for kind in KINDS:
            for mode in s.curves:
                for pol in POLARITIES:
                    direction = better(kind, mode, pol)
                    for name in labels:
                        row = {}
                        for ref in refs:
                            if ref == name:
                                continue
                            d = paired_difference(
                                per_pair.get((kind, mode, pol, name), {}),
                                per_pair.get((kind, mode, pol, ref), {}), direction,
                                n_boot=s.n_boot, seed=s.seed)
                            d["sentence"] = difference_words(name, ref, d)
                            row[ref] = d
                        if row:
                            diffs[kind][mode][pol][name] = row
        return {"curves": out, "differences": diffs}

    main_labels = [m for m, src in sources.items() if not src.baseline]
    sets = {"all": curves_over(ev.curve_pairs, main_labels)}
    if any(src.baseline for src in sources.values()):
        sets["subset"] = curves_over(ev.subset, list(sources))
    result["curves"] = {name: v["curves"]["rate"] for name, v in sets.items()}
    result["continuous"] = {name: v["curves"]["continuous"] for name, v in sets.items()}
    result["differences"] = {name: v["differences"] for name, v in sets.items()}
    return result


__all__ = ["MIN_PAIRS_FOR_VERDICT", "POLARITIES", "accuracy_summary", "curve_summary",
           "difference_words", "model_record", "paired_difference", "per_pair_curves",
           "stratified_folds", "summarise", "summary_of"]
