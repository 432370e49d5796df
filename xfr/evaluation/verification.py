"""Verification accuracy with k-fold threshold selection (paper Sec. 3.1; docs/method.md,
"Verification accuracy").

For each fold, the threshold (searched over 0..4 in steps of 0.01 on the squared L2 distance of
normalised embeddings) that maximises accuracy on the other folds is applied to the held fold;
the accuracy is the mean over folds. This is LFW's standard protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from xfr.interfaces.vocabulary import is_positive

THRESHOLDS = np.round(np.arange(0.0, 4.0 + 1e-9, 0.01), 2)


def accuracy_at(distances: np.ndarray, same: np.ndarray, threshold: float) -> float:
    """Fraction of pairs decided correctly (:func:`~xfr.interfaces.vocabulary.is_positive`:
    positive when ``distance < threshold``, paper Sec. 3.1)."""
    distances, same = np.asarray(distances, float), np.asarray(same, bool)
    if len(distances) == 0:
        raise ValueError("no pairs to evaluate")
    return float(np.mean(is_positive(distances, threshold) == same))


def best_threshold(distances: np.ndarray, same: np.ndarray,
                   thresholds: np.ndarray = THRESHOLDS) -> float:
    """The threshold of ``thresholds`` with the highest accuracy (the smallest on ties)."""
    distances, same = np.asarray(distances, float), np.asarray(same, bool)
    acc = (is_positive(distances[None, :], thresholds[:, None]) == same[None, :]).mean(axis=1)
    return float(thresholds[int(np.argmax(acc))])


@dataclass
class KFoldResult:
    """Per-fold thresholds and accuracies, their mean and standard deviation."""

    accuracies: list[float]
    thresholds: list[float]
    mean: float
    std: float
    #: Best threshold on all pairs together (the one a shipped model carries).
    overall_threshold: float
    extra: dict[str, float] = field(default_factory=dict)


def kfold_accuracy(distances: np.ndarray, same: np.ndarray, folds: np.ndarray | None = None,
                   k: int = 10) -> KFoldResult:
    """k-fold threshold-selection accuracy.

    ``folds`` gives each pair's fold id; without it pair ``i`` goes to fold ``i mod k`` (so
    lists ordered positives-then-negatives, as LFW's, give folds with both kinds).
    """
    distances, same = np.asarray(distances, float), np.asarray(same, bool)
    if distances.shape != same.shape or distances.ndim != 1:
        raise ValueError("distances and same must be 1-D arrays of equal length")
    if not np.isfinite(distances).all():
        raise ValueError("distances contain NaN or infinite values")
    n = len(distances)
    if folds is None:
        if n < k:
            raise ValueError(f"{n} pairs cannot be split into {k} folds")
        folds = np.arange(n) % k
    folds = np.asarray(folds)
    accs, ths = [], []
    for f in np.unique(folds):
        test = folds == f
        th = best_threshold(distances[~test], same[~test])
        accs.append(accuracy_at(distances[test], same[test], th))
        ths.append(th)
    return KFoldResult(accs, ths, float(np.mean(accs)), float(np.std(accs)),
                       best_threshold(distances, same))
