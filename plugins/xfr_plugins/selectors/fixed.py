"""The ``fixed`` selector: always the named strategy (``"fixed:oim"``, the paper's conclusion,
Sec. 4: "the Mask Selection module in the pipeline may not be necessary, as ... OIM is the most
effective masking technique for both types of FV decision").

The candidates are still scored with SM+ / SM- (eq. 1, 2; see :mod:`.metric`, same edge cases),
so that an explanation reports every score. ``"fixed"`` without an argument means
``"fixed:oim"``.

When the named strategy is not eligible (empty mask, not applicable to the decision) or is not
among the candidates, the selection is ``Selection(strategy=None, reason=...)`` saying why: no
other strategy is substituted silently. Pass ``fallback=True`` to fall back to the metric
selector's choice instead (the reason then says so).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING

from xfr.interfaces.selector import Selection
from xfr.interfaces.vocabulary import BEST_STRATEGY
from xfr_plugins.selectors.metric import (
    D_FLOOR,
    ScoringSelector,
    best,
    none_eligible_reason,
)

if TYPE_CHECKING:
    from xfr.explanation import Candidate

#: The paper's conclusion (Sec. 4): OIM.
DEFAULT_STRATEGY = BEST_STRATEGY


class FixedSelector(ScoringSelector):
    """Always chooses ``argument`` (default ``"oim"``) when it is eligible."""

    name = "fixed"

    def __init__(
        self,
        argument: str | None = None,
        *,
        fallback: bool = False,
        decisions: Mapping[str, Collection[str]] | None = None,
        d_floor: float = D_FLOOR,
    ) -> None:
        strategy = DEFAULT_STRATEGY if argument is None else argument
        if not isinstance(strategy, str) or not strategy.strip() or strategy != strategy.strip():
            raise ValueError(
                f"fixed selector needs a strategy name such as 'fixed:oim', got {argument!r}"
            )
        super().__init__(decisions=decisions, d_floor=d_floor)
        self.strategy = strategy
        self.fallback = bool(fallback)

    def select(self, decision: str, distance: float, candidates: Sequence[Candidate]) -> Selection:
        """Score the candidates, then choose :attr:`strategy` if it is eligible."""
        scores, note = self.score(decision, distance, candidates)
        chosen = next((c for c in candidates if c.name == self.strategy), None)
        if chosen is not None and chosen.eligible:
            return Selection(chosen.name, f"fixed strategy {chosen.name}{note}", scores)
        if chosen is None:
            why = (
                f"fixed strategy {self.strategy!r} is not among the candidates "
                f"({', '.join(c.name for c in candidates) or 'none'})"
            )
        else:
            why = f"fixed strategy {self.strategy} is not eligible: {chosen.reason}"
        if self.fallback:
            winner = best(candidates)
            if winner is not None:
                return Selection(
                    winner.name,
                    f"{why}; fell back to the largest score: {winner.name} {winner.score:.4g}"
                    + note,
                    scores,
                )
            why += "; fallback: " + none_eligible_reason(candidates)
        return Selection(None, why + note, scores)

    def __repr__(self) -> str:
        return f"FixedSelector({self.strategy!r}, fallback={self.fallback})"
