"""The selector contract (paper Sec. 3.2 eq. 1 SM+, Sec. 3.3 eq. 2 SM-)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from xfr.explanation import Candidate
    from xfr.interfaces.vocabulary import Decision


@dataclass(frozen=True)
class Selection:
    """The chosen strategy (``None`` when no candidate is eligible) and why."""

    strategy: str | None
    reason: str
    scores: dict[str, float | None] = field(default_factory=dict)


@runtime_checkable
class Selector(Protocol):
    """Scores the candidate masks of one pair and picks one."""

    name: str

    def select(
        self, decision: Decision, distance: float, candidates: Sequence[Candidate]
    ) -> Selection:
        """Score every candidate (its ``score``/``reason`` fields) and return the choice.

        ``distance`` is the pair's original distance d; each candidate carries its removed area
        RA and the distances after masking (``pg``/``pp`` for positive, ``npg`` for negative).
        """
        ...
