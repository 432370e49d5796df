"""The paper's Table 1: mean selection metric per mask strategy (Sec. 4, "Masking technique
selection").

Mean SM+ (eq. 1) of OIM and UM over the positive pairs and mean SM- (eq. 2) of OIM, UM and
N-IUM over the negative pairs, for each attention generator, with percentile-bootstrap 95 %
confidence intervals over pairs. Two groupings are computed:

- ``"correct"`` (the default report): accepted genuine pairs (true positives) for SM+ and
  rejected impostor pairs (true negatives) for SM-;
- ``"decision"``: every pair the verifier accepted (SM+) or rejected (SM-), right or wrong,
  which is how the paper words it ("the positive decision probe-gallery pairs").

Also reported: the median (SM means are sensitive to pairs with a tiny distance d) and how
often each strategy has the largest score of its pair (what the metric selector would choose).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xfr.evaluation.bootstrap import Interval, bootstrap_ci
from xfr.interfaces.vocabulary import DECISIONS, POSITIVE, paper_strategies

#: The rows of Tab. 1: the paper's strategies of each decision (Sec. 3.2-3.3), in its order.
STRATEGIES: dict[str, tuple[str, ...]] = {d: paper_strategies(d) for d in DECISIONS}
#: The paper's Tab. 1, LFW column (attention maps by ViT-LRP, all LFW pairs).
PAPER_LFW: dict[tuple[str, str], float] = {
    ("positive", "oim"): 10.00,
    ("positive", "um"): 4.80,
    ("negative", "oim"): 1.84,
    ("negative", "um"): 1.56,
    ("negative", "nium"): 1.70,
}
GROUPINGS = ("correct", "decision")


@dataclass
class PairScores:
    """One pair's selection-metric scores, as the paper explainer reported them."""

    same: bool
    decision: str
    #: strategy -> SM score, ``None`` when not eligible (empty mask, ...).
    scores: Mapping[str, float | None]


@dataclass
class Cell:
    """One Table 1 cell: one generator, decision, strategy."""

    interval: Interval
    median: float
    #: Fraction of the group's pairs where this strategy had the largest eligible score.
    win_rate: float
    #: Pairs of the group where the strategy was not eligible (no score).
    missing: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.interval.to_dict(), "median": self.median, "win_rate": self.win_rate,
                "missing": self.missing}


def in_group(p: PairScores, decision: str, grouping: str) -> bool:
    """Whether pair ``p`` counts for ``decision`` under ``grouping`` (see module docstring)."""
    if grouping not in GROUPINGS:
        raise ValueError(f"grouping must be one of {GROUPINGS}, got {grouping!r}")
    if p.decision != decision:
        return False
    return grouping == "decision" or p.same == (decision == POSITIVE)


def table1(pairs: Iterable[PairScores], *, grouping: str = "correct", n_boot: int = 2000,
           confidence: float = 0.95, seed: int = 0) -> dict[tuple[str, str], Cell]:
    """Table 1 cells ``{(decision, strategy): Cell}`` for one attention generator."""
    pairs = list(pairs)
    out: dict[tuple[str, str], Cell] = {}
    for decision, names in STRATEGIES.items():
        group = [p for p in pairs if in_group(p, decision, grouping)]
        winners = []
        for p in group:
            valid = {s: p.scores.get(s) for s in names if p.scores.get(s) is not None}
            winners.append(max(valid, key=lambda s: valid[s]) if valid else None)  # type: ignore[arg-type,return-value]
        for s in names:
            vals = np.array([p.scores[s] for p in group if p.scores.get(s) is not None],
                            dtype=np.float64)
            ci = bootstrap_ci(vals, n_boot=n_boot, confidence=confidence, seed=seed)
            out[(decision, s)] = Cell(
                interval=ci,
                median=float(np.median(vals)) if len(vals) else float("nan"),
                win_rate=(sum(w == s for w in winners) / len(group)) if group else float("nan"),
                missing=len(group) - len(vals),
            )
    return out


__all__ = ["GROUPINGS", "PAPER_LFW", "STRATEGIES", "Cell", "PairScores", "in_group", "table1"]
