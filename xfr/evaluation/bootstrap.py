"""Percentile-bootstrap confidence intervals over pairs (for Table 1 means and curve AUCs).

Pairs are resampled with replacement ``n_boot`` times; the interval is the
``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the statistic over the
resamples. A fixed ``seed`` makes it deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A statistic on the full sample and its bootstrap confidence interval."""

    estimate: float
    low: float
    high: float
    n: int
    confidence: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def format(self, digits: int = 2) -> str:
        """``"10.00 [9.12, 10.95]"``; ``"n/a"`` for an empty sample."""
        if self.n == 0:
            return "n/a"
        return f"{self.estimate:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def _check(values: np.ndarray, n_boot: int, confidence: float) -> None:
    if not np.isfinite(values).all():
        raise ValueError("bootstrap values contain NaN or infinite values")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")


def bootstrap_ci(values: np.ndarray, *, statistic: Callable[[np.ndarray], np.ndarray] | None = None,
                 n_boot: int = 2000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """Bootstrap CI of a statistic (default: the mean) of per-pair ``values``.

    ``values`` is ``(N,)`` or ``(N, ...)``: rows are resampled. ``statistic`` maps an array of
    rows ``(B, N, ...)`` to ``(B,)`` (resample axis first; default: mean over axis 1). An empty
    sample gives ``Interval(nan, nan, nan, 0, confidence)``.
    """
    values = np.asarray(values, dtype=np.float64)
    _check(values, n_boot, confidence)
    stat = statistic or (lambda x: x.mean(axis=1))
    n = values.shape[0] if values.ndim else 0
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0, confidence)
    estimate = float(np.asarray(stat(values[None]))[0])
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    chunk = max(1, 2_000_000 // max(1, values[0].size * n))
    for s in range(0, n_boot, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_boot - s), n))
        stats[s : s + len(idx)] = np.asarray(stat(values[idx]))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return Interval(estimate, float(low), float(high), n, confidence)


__all__ = ["Interval", "bootstrap_ci"]
