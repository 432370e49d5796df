"""Table 1 (mean SM+ / SM- per mask strategy) on hand-made scores."""

from __future__ import annotations

import math

import pytest

from xfr.evaluation.table1 import PAPER_LFW, PairScores, in_group, table1


def scores() -> list[PairScores]:
    return [
        PairScores(True, "positive", {"oim": 10.0, "um": 4.0}),
        PairScores(True, "positive", {"oim": 6.0, "um": 8.0}),
        PairScores(True, "positive", {"oim": None, "um": 2.0}),  # OIM empty mask
        PairScores(False, "positive", {"oim": 100.0, "um": 1.0}),  # a false accept
        PairScores(False, "negative", {"oim": 2.0, "um": 1.0, "nium": 1.5}),
        PairScores(False, "negative", {"oim": 1.0, "um": 3.0, "nium": 0.5}),
        PairScores(True, "negative", {"oim": -1.0, "um": 0.0, "nium": 9.0}),  # a false reject
    ]


def test_means_over_true_positives_and_true_negatives():
    t = table1(scores(), n_boot=200)
    assert t[("positive", "oim")].interval.estimate == pytest.approx(8.0)
    assert t[("positive", "oim")].interval.n == 2
    assert t[("positive", "oim")].missing == 1
    assert t[("positive", "um")].interval.estimate == pytest.approx(14 / 3)
    assert t[("negative", "oim")].interval.estimate == pytest.approx(1.5)
    assert t[("negative", "nium")].interval.estimate == pytest.approx(1.0)


def test_decision_grouping_includes_wrong_decisions():
    t = table1(scores(), grouping="decision", n_boot=200)
    assert t[("positive", "oim")].interval.estimate == pytest.approx(116 / 3)
    assert t[("negative", "nium")].interval.n == 3


def test_win_rate_counts_the_largest_score_of_each_pair():
    t = table1(scores(), n_boot=200)
    # true positives: OIM wins pair 1, UM wins pair 2 and pair 3 (OIM not eligible)
    assert t[("positive", "oim")].win_rate == pytest.approx(1 / 3)
    assert t[("positive", "um")].win_rate == pytest.approx(2 / 3)
    assert t[("negative", "oim")].win_rate == pytest.approx(0.5)
    assert t[("negative", "um")].win_rate == pytest.approx(0.5)
    assert t[("negative", "nium")].win_rate == 0.0


def test_cells_carry_a_ci_around_the_mean_and_the_median():
    t = table1(scores(), n_boot=500)
    c = t[("positive", "um")]
    assert c.interval.low <= c.interval.estimate <= c.interval.high
    assert c.median == 4.0


def test_empty_group_gives_nan_cells():
    t = table1([PairScores(True, "positive", {"oim": 1.0, "um": 2.0})], n_boot=50)
    neg = t[("negative", "oim")]
    assert neg.interval.n == 0 and math.isnan(neg.interval.estimate) and math.isnan(neg.win_rate)


def test_paper_values_are_the_lfw_column_of_the_papers_table():
    assert PAPER_LFW[("positive", "oim")] == 10.00
    assert PAPER_LFW[("positive", "um")] == 4.80
    assert PAPER_LFW[("negative", "oim")] == 1.84
    assert PAPER_LFW[("negative", "um")] == 1.56
    assert PAPER_LFW[("negative", "nium")] == 1.70


def test_unknown_grouping_is_rejected():
    with pytest.raises(ValueError, match="grouping"):
        in_group(scores()[0], "positive", "everything")
