"""The selectors ``metric`` (paper eq. 1 SM+, eq. 2 SM-) and ``fixed`` (``fixed:oim``, Sec. 4),
on hand-computed cases, their edge cases and their selection order."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xfr import registry
from xfr.explanation import Candidate
from xfr.interfaces.selector import Selection, Selector


def cand(name: str, ra: float, **distances: float) -> Candidate:
    return Candidate(name=name, mask=np.zeros((4, 4), bool), removed_area=ra, distances=distances)


def metric() -> Selector:
    return registry.create("selector", "metric")


def positive_case() -> list[Candidate]:
    # d = 0.5. OIM: ((1.0 - .5)/.5)/(2*.1) + ((.75 - .5)/.5)/(2*.1) = 5 + 2.5 = 7.5
    #          UM:  ((1.3 - .5)/.5)/(2*.4) + ((1.1 - .5)/.5)/(2*.4) = 2 + 1.5 = 3.5
    return [cand("oim", 0.1, pg=1.0, pp=0.75), cand("um", 0.4, pg=1.3, pp=1.1)]


def test_sm_plus_matches_equation_1_by_hand_and_the_largest_wins() -> None:
    candidates = positive_case()
    sel = metric().select("positive", 0.5, candidates)
    assert isinstance(sel, Selection)
    assert sel.strategy == "oim"
    assert sel.scores == {"oim": pytest.approx(7.5), "um": pytest.approx(3.5)}
    assert [c.score for c in candidates] == [pytest.approx(7.5), pytest.approx(3.5)]
    assert all(c.eligible and c.reason is None for c in candidates)
    assert "SM+" in sel.reason and "oim" in sel.reason


def test_sm_minus_matches_equation_2_by_hand_and_the_largest_wins() -> None:
    # d = 1.6. OIM: ((1.6 - 1.2)/1.6)/.05 = 5;  UM: ((1.6 - .8)/1.6)/.5 = 1;
    #          N-IUM: ((1.6 - .6)/1.6)/.1 = 6.25
    candidates = [
        cand("oim", 0.05, npg=1.2),
        cand("um", 0.5, npg=0.8),
        cand("nium", 0.1, npg=0.6),
    ]
    sel = metric().select("negative", 1.6, candidates)
    assert sel.scores == {
        "oim": pytest.approx(5.0),
        "um": pytest.approx(1.0),
        "nium": pytest.approx(6.25),
    }
    assert sel.strategy == "nium"
    assert "SM-" in sel.reason


def test_the_largest_score_wins_even_when_every_score_is_negative() -> None:
    # Masking raised the distance of a negative pair: OIM ((1.6-2)/1.6)/.1 = -2.5,
    # UM ((1.6-1.8)/1.6)/.5 = -0.25.
    sel = metric().select("negative", 1.6, [cand("oim", 0.1, npg=2.0), cand("um", 0.5, npg=1.8)])
    assert sel.scores == {"oim": pytest.approx(-2.5), "um": pytest.approx(-0.25)}
    assert sel.strategy == "um"


def test_an_empty_mask_is_not_eligible_and_says_why() -> None:
    candidates = [cand("oim", 0.0, pg=0.5, pp=0.5), cand("um", 0.4, pg=1.3, pp=1.1)]
    sel = metric().select("positive", 0.5, candidates)
    assert sel.strategy == "um"
    oim = candidates[0]
    assert (oim.eligible, oim.score, oim.reason) == (False, None, "empty mask (RA = 0)")
    assert sel.scores["oim"] is None
    assert "oim not eligible" in sel.reason


def test_no_eligible_strategy_gives_no_choice_and_every_reason() -> None:
    candidates = [cand("oim", 0.0, npg=1.0), cand("um", 0.0, npg=1.0), cand("nium", 0.0, npg=1.0)]
    sel = metric().select("negative", 1.2, candidates)
    assert sel.strategy is None
    assert sel.reason.startswith("no eligible strategy")
    assert sel.reason.count("empty mask (RA = 0)") == 3
    assert sel.scores == {"oim": None, "um": None, "nium": None}
    assert metric().select("negative", 1.2, []) == Selection(None, "no candidate strategies", {})


def test_identical_embeddings_give_finite_scores_ranked_by_distance_gain_per_area() -> None:
    # d = 0 is floored at 1e-12: OIM gains (.5 + .3)/.25 = 3.2 per area, UM (1 + .9)/.5 = 3.8.
    candidates = [cand("oim", 0.25, pg=0.5, pp=0.3), cand("um", 0.5, pg=1.0, pp=0.9)]
    sel = metric().select("positive", 0.0, candidates)
    assert sel.strategy == "um"
    assert all(math.isfinite(s) for s in sel.scores.values() if s is not None)
    assert sel.scores["um"] == pytest.approx(((1.0 - 1e-12) / 1e-12 + (0.9 - 1e-12) / 1e-12) / 1.0)
    assert "d = 0 < 1e-12" in sel.reason
    # Nothing changed by masking either: still finite (-1/RA), never NaN.
    same = metric().select("positive", 0.0, [cand("oim", 0.25, pg=0.0, pp=0.0)])
    assert same.scores["oim"] == pytest.approx(-4.0)


def test_n_ium_is_not_eligible_for_a_positive_decision() -> None:
    candidates = [*positive_case(), cand("nium", 0.2, pg=2.0, pp=2.0)]
    sel = metric().select("positive", 0.5, candidates)
    nium = candidates[2]
    assert not nium.eligible and nium.score is None
    assert nium.reason == "nium does not apply to positive decisions (only negative)"
    assert sel.strategy == "oim"


def test_a_candidate_without_the_distances_of_the_decision_is_not_eligible() -> None:
    candidates = [cand("probe-only", 0.1, pg=2.0, pp=2.0), cand("oim", 0.1, npg=0.1)]
    sel = metric().select("negative", 1.0, candidates)
    assert candidates[0].reason == "not applicable to a negative decision: no distance d_NPG"
    assert sel.strategy == "oim"


def test_a_candidate_marked_not_eligible_by_the_caller_stays_so() -> None:
    candidates = positive_case()
    candidates[0].eligible = False
    candidates[0].reason = "mask covers the eyes only"
    sel = metric().select("positive", 0.5, candidates)
    assert sel.strategy == "um"
    assert candidates[0].reason == "mask covers the eyes only" and candidates[0].score is None


def test_a_score_that_would_overflow_makes_its_candidate_not_eligible() -> None:
    candidates = [cand("oim", 1e-310, pg=1.0, pp=1.0), cand("um", 0.4, pg=1.3, pp=1.1)]
    sel = metric().select("positive", 0.5, candidates)
    assert candidates[0].eligible is False and "SM+ overflows" in (candidates[0].reason or "")
    assert sel.strategy == "um"


def test_ties_go_to_the_candidate_that_comes_first() -> None:
    def tied() -> list[Candidate]:
        return [cand("um", 0.2, npg=0.5), cand("oim", 0.2, npg=0.5)]

    first = metric().select("negative", 1.0, tied())
    assert first.strategy == "um"
    assert "tie with oim broken by candidate order" in first.reason
    assert metric().select("negative", 1.0, tied()[::-1]).strategy == "oim"


@pytest.mark.parametrize(
    ("decision", "distance", "candidates", "message"),
    [
        ("maybe", 1.0, [], "decision must be 'positive' or 'negative'"),
        ("positive", float("nan"), [], "distance d must be finite"),
        ("positive", -0.1, [], "distance d must be finite and >= 0"),
        ("positive", "far", [], "distance d must be a number"),
        ("positive", 1.0, [cand("oim", 1.5, pg=1, pp=1)], "must be a fraction in"),
        ("positive", 1.0, [cand("oim", float("nan"), pg=1, pp=1)], "removed area RA of 'oim'"),
        ("positive", 1.0, [cand("oim", 0.1, pg=float("inf"), pp=1)], "distance 'pg' of 'oim'"),
        ("negative", 1.0, [cand("oim", 0.1, npg=1), cand("oim", 0.2, npg=1)], "duplicate"),
    ],
)
def test_bad_input_is_a_value_error(
    decision: str, distance: float, candidates: list[Candidate], message: str
) -> None:
    for spec in ("metric", "fixed:oim"):
        with pytest.raises(ValueError, match=message):
            registry.create("selector", spec).select(decision, distance, candidates)


def test_metric_takes_no_argument_and_a_positive_floor() -> None:
    with pytest.raises(ValueError, match="takes no argument"):
        registry.create("selector", "metric:oim")
    with pytest.raises(ValueError, match="d_floor"):
        registry.create("selector", "metric", d_floor=0.0)


def test_fixed_always_picks_the_named_strategy_and_still_scores_all() -> None:
    candidates = positive_case()  # the metric would choose OIM (7.5 > 3.5)
    sel = registry.create("selector", "fixed:um").select("positive", 0.5, candidates)
    assert sel.strategy == "um"
    assert sel.scores == {"oim": pytest.approx(7.5), "um": pytest.approx(3.5)}
    assert sel.reason == "fixed strategy um"


def test_fixed_without_argument_is_the_papers_oim() -> None:
    candidates = [cand("um", 0.5, npg=0.1), cand("oim", 0.1, npg=1.5)]
    assert registry.create("selector", "fixed").select("negative", 1.6, candidates).strategy == (
        "oim"
    )


def test_fixed_gives_no_choice_when_its_strategy_is_not_eligible_or_absent() -> None:
    candidates = [cand("oim", 0.0, pg=1.0, pp=1.0), cand("um", 0.4, pg=1.3, pp=1.1)]
    sel = registry.create("selector", "fixed:oim").select("positive", 0.5, candidates)
    assert sel.strategy is None
    assert sel.reason == "fixed strategy oim is not eligible: empty mask (RA = 0)"
    with_nium = [*positive_case(), cand("nium", 0.2, pg=2.0, pp=2.0)]
    nium = registry.create("selector", "fixed:nium").select("positive", 0.5, with_nium)
    assert nium.strategy is None and "does not apply to positive decisions" in nium.reason
    absent = registry.create("selector", "fixed:probe-only").select("positive", 0.5, candidates)
    assert absent.strategy is None
    assert "'probe-only' is not among the candidates (oim, um)" in absent.reason


def test_fixed_with_fallback_takes_the_metric_choice_when_its_strategy_is_not_eligible() -> None:
    candidates = [
        cand("oim", 0.0, npg=1.0),
        cand("um", 0.5, npg=0.8),
        cand("nium", 0.1, npg=0.6),
    ]
    sel = registry.create("selector", "fixed:oim", fallback=True).select(
        "negative", 1.6, candidates
    )
    assert sel.strategy == "nium"
    assert "fell back to the largest score: nium 6.25" in sel.reason
    none = registry.create("selector", "fixed:oim", fallback=True).select(
        "negative", 1.6, [cand("oim", 0.0, npg=1.0)]
    )
    assert none.strategy is None and "no eligible strategy" in none.reason


def test_fixed_needs_a_strategy_name() -> None:
    with pytest.raises(ValueError, match="needs a strategy name"):
        registry.create("selector", "fixed: ")


def test_both_selectors_implement_the_selector_contract() -> None:
    for spec, name in (("metric", "metric"), ("fixed:oim", "fixed")):
        selector = registry.create("selector", spec)
        assert isinstance(selector, Selector)
        assert selector.name == name
