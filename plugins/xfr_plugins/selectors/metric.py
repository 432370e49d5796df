"""The ``metric`` selector: the paper's selection metrics SM+ (eq. 1) and SM- (eq. 2).

For a positive decision (paper Sec. 3.2, eq. 1), with d the pair's distance, d_PG the distance
between the gallery and the masked probe, d_PP the distance between the probe and the masked
gallery, and RA the removed fraction of the image (0..1; docs/method.md, "Selection")::

    SM+ = ((d_PG - d) / d) / (2 RA) + ((d_PP - d) / d) / (2 RA)

For a negative decision (Sec. 3.3, eq. 2), with d_NPG the distance between the masked probe and
the masked gallery::

    SM- = ((d - d_NPG) / d) / RA

The candidate with the largest score wins (even when every score is negative).

Edge cases (never NaN, never infinite):

- RA = 0 (empty mask): the candidate is not eligible, reason ``"empty mask (RA = 0)"``.
- d = 0 (identical embeddings, e.g. the same photo twice): d is floored at ``d_floor``
  (1e-12 by default) so the scores stay finite and keep the ranking of the limit
  ``d -> 0`` (the largest distance increase per removed area wins); the selection reason says
  so. A score that would still overflow makes its candidate not eligible.
- A candidate whose strategy does not apply to the decision (N-IUM for a positive decision,
  per ``decisions``), or that lacks the distances the decision needs (``pg`` and ``pp`` for
  positive, ``npg`` for negative), is not eligible, with a reason.
- A candidate already marked ``eligible=False`` by the caller stays so, with its reason.
- No eligible candidate: ``Selection(strategy=None, reason=...)`` listing every reason.
- Ties (equal scores): the candidate that comes first in the given sequence wins.

Bad input (unknown decision, negative or non-finite distance, RA outside [0, 1], duplicate
candidate names) raises ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING

from xfr.interfaces.selector import Selection
from xfr.interfaces.vocabulary import DECISIONS, NEGATIVE, PAPER_STRATEGIES, POSITIVE

if TYPE_CHECKING:
    from xfr.explanation import Candidate

#: Smallest d used in the division of eq. (1) and (2); see "d = 0" in the module docstring.
D_FLOOR = 1e-12
#: Which decisions each of the paper's strategies explains (Sec. 3.2-3.3; the vocabulary's
#: :data:`~xfr.interfaces.vocabulary.PAPER_STRATEGIES`). Strategies missing from this mapping
#: are taken to apply to a decision when their distances for it are present.
PAPER_DECISIONS: Mapping[str, frozenset[str]] = {
    s.name: frozenset(s.decisions) for s in PAPER_STRATEGIES.values()
}
_NEEDED = {POSITIVE: ("pg", "pp"), NEGATIVE: ("npg",)}
_METRIC = {POSITIVE: "SM+", NEGATIVE: "SM-"}


def sm_positive(d: float, d_pg: float, d_pp: float, ra: float) -> float:
    """SM+ of paper eq. (1); ``ra`` > 0 is the removed fraction, ``d`` > 0."""
    return ((d_pg - d) / d) / (2 * ra) + ((d_pp - d) / d) / (2 * ra)


def sm_negative(d: float, d_npg: float, ra: float) -> float:
    """SM- of paper eq. (2); ``ra`` > 0 is the removed fraction, ``d`` > 0."""
    return ((d - d_npg) / d) / ra


def _finite_non_negative(value: object, what: str) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{what} must be finite and >= 0, got {v}")
    return v


def check_inputs(decision: str, distance: float, candidates: Sequence[Candidate]) -> float:
    """Validate the arguments of ``select``; return ``distance`` as a float."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be 'positive' or 'negative', got {decision!r}")
    d = _finite_non_negative(distance, "distance d")
    seen: set[str] = set()
    for c in candidates:
        if c.name in seen:
            raise ValueError(f"duplicate candidate name {c.name!r}")
        seen.add(c.name)
        ra = _finite_non_negative(c.removed_area, f"removed area RA of {c.name!r}")
        if ra > 1:
            raise ValueError(
                f"removed area RA of {c.name!r} must be a fraction in [0, 1], got {ra}"
            )
        for key, value in c.distances.items():
            _finite_non_negative(value, f"distance {key!r} of {c.name!r}")
    return d


def score_candidates(
    decision: str,
    distance: float,
    candidates: Sequence[Candidate],
    *,
    decisions: Mapping[str, Collection[str]] = PAPER_DECISIONS,
    d_floor: float = D_FLOOR,
) -> dict[str, float | None]:
    """Fill each candidate's ``score``, ``eligible`` and ``reason``; return the scores.

    ``score`` is SM+ (eq. 1) or SM- (eq. 2) for an eligible candidate, ``None`` otherwise.
    """
    d = max(check_inputs(decision, distance, candidates), d_floor)
    metric = _METRIC[decision]
    scores: dict[str, float | None] = {}
    for c in candidates:
        reason = _ineligibility(decision, c, decisions)
        score: float | None = None
        if reason is None:
            ra = float(c.removed_area)
            if decision == POSITIVE:
                score = sm_positive(d, float(c.distances["pg"]), float(c.distances["pp"]), ra)
            else:
                score = sm_negative(d, float(c.distances["npg"]), ra)
            if not math.isfinite(score):
                reason, score = f"{metric} overflows (RA = {ra:g}, d = {d:g})", None
        c.score = score
        c.eligible = reason is None
        c.reason = reason
        scores[c.name] = score
    return scores


def _ineligibility(
    decision: str, c: Candidate, decisions: Mapping[str, Collection[str]]
) -> str | None:
    if not c.eligible:
        return c.reason or "marked not eligible by the caller"
    allowed = decisions.get(c.name)
    if allowed is not None and decision not in allowed:
        only = ", ".join(sorted(allowed))
        return f"{c.name} does not apply to {decision} decisions (only {only})"
    missing = [k for k in _NEEDED[decision] if k not in c.distances]
    if missing:
        return f"not applicable to a {decision} decision: no distance " + ", ".join(
            f"d_{k.upper()}" for k in missing
        )
    if float(c.removed_area) == 0.0:
        return "empty mask (RA = 0)"
    return None


def floor_note(distance: float, d_floor: float) -> str:
    """The remark added to a selection reason when d was floored."""
    return f"; d = {float(distance):g} < {d_floor:g}, scores use d = {d_floor:g}"


def best(candidates: Sequence[Candidate]) -> Candidate | None:
    """The eligible candidate with the largest score, the first one on ties."""
    winner: Candidate | None = None
    for c in candidates:
        if c.eligible and c.score is not None and (winner is None or c.score > winner.score):  # type: ignore[operator]
            winner = c
    return winner


def none_eligible_reason(candidates: Sequence[Candidate]) -> str:
    if not candidates:
        return "no candidate strategies"
    return "no eligible strategy: " + "; ".join(f"{c.name}: {c.reason}" for c in candidates)


class ScoringSelector:
    """What every SM+/SM- based selector shares: the strategies' decisions (``decisions``,
    default: the paper's, N-IUM negative only) and the smallest d divided by (``d_floor``), and
    the scoring of the candidates with eq. 1 or 2 (:func:`score_candidates`)."""

    def __init__(
        self,
        *,
        decisions: Mapping[str, Collection[str]] | None = None,
        d_floor: float = D_FLOOR,
    ) -> None:
        if not (isinstance(d_floor, (int, float)) and math.isfinite(d_floor) and d_floor > 0):
            raise ValueError(f"d_floor must be a finite number > 0, got {d_floor!r}")
        self.decisions: Mapping[str, Collection[str]] = (
            PAPER_DECISIONS if decisions is None else dict(decisions)
        )
        self.d_floor = float(d_floor)

    def score(
        self, decision: str, distance: float, candidates: Sequence[Candidate]
    ) -> tuple[dict[str, float | None], str]:
        """Score ``candidates`` in place; return the scores and the note on a floored d."""
        scores = score_candidates(
            decision, distance, candidates, decisions=self.decisions, d_floor=self.d_floor
        )
        note = floor_note(distance, self.d_floor) if float(distance) < self.d_floor else ""
        return scores, note


class MetricSelector(ScoringSelector):
    """Picks the candidate with the largest SM+ (positive) or SM- (negative) score.

    ``decisions`` maps strategy names to the decisions they explain (default: the paper's,
    N-IUM negative only); ``d_floor`` is the smallest d divided by.
    """

    name = "metric"

    def __init__(
        self,
        argument: str | None = None,
        *,
        decisions: Mapping[str, Collection[str]] | None = None,
        d_floor: float = D_FLOOR,
    ) -> None:
        if argument:
            raise ValueError(f"the metric selector takes no argument, got 'metric:{argument}'")
        super().__init__(decisions=decisions, d_floor=d_floor)

    def select(self, decision: str, distance: float, candidates: Sequence[Candidate]) -> Selection:
        """Score every candidate (eq. 1 or 2) and choose the largest score."""
        scores, note = self.score(decision, distance, candidates)
        winner = best(candidates)
        if winner is None:
            return Selection(None, none_eligible_reason(candidates) + note, scores)
        metric = _METRIC[decision]
        others = [
            f"{c.name} {c.score:.4g}" if c.score is not None else f"{c.name} not eligible"
            for c in candidates
            if c is not winner
        ]
        ties = [c.name for c in candidates if c is not winner and c.score == winner.score]
        reason = f"largest {metric}: {winner.name} {winner.score:.4g}"
        if others:
            reason += f" (others: {', '.join(others)})"
        if ties:
            reason += f"; tie with {', '.join(ties)} broken by candidate order"
        return Selection(winner.name, reason + note, scores)

    def __repr__(self) -> str:
        return f"MetricSelector(d_floor={self.d_floor:g})"
