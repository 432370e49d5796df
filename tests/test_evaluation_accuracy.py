"""Verification accuracy of an evaluation run: 10-fold protocol, per fold, at the threshold."""

from __future__ import annotations

import numpy as np
import pytest

from xfr.evaluation.results import accuracy_summary, stratified_folds
from xfr.evaluation.verification import kfold_accuracy


def test_ten_lfw_folds_are_used_as_they_are():
    rng = np.random.default_rng(0)
    same = np.tile(np.r_[np.ones(30, bool), np.zeros(30, bool)], 10)
    d = np.where(same, rng.normal(0.8, 0.3, same.size), rng.normal(1.6, 0.3, same.size))
    folds = np.repeat(np.arange(1, 11), 60)
    a = accuracy_summary(d, same, folds, threshold=1.2)
    ref = kfold_accuracy(d, same, folds=folds)
    assert "pair list" in a["kfold"]["protocol"]
    assert a["kfold"]["accuracies"] == ref.accuracies
    assert a["kfold"]["mean"] == pytest.approx(ref.mean)


def test_fewer_folds_get_ten_stratified_sub_folds_holding_both_kinds():
    same = np.r_[np.ones(40, bool), np.zeros(40, bool)]
    f = stratified_folds(same, 10)
    for k in range(10):
        assert same[f == k].sum() == 4 and (~same[f == k]).sum() == 4
    d = np.where(same, 0.5, 1.5)
    a = accuracy_summary(d, same, np.r_[np.full(40, 9), np.full(40, 10)], threshold=1.0)
    assert "stratified" in a["kfold"]["protocol"]
    assert len(a["kfold"]["accuracies"]) == 10 and a["kfold"]["mean"] == 1.0


def test_rates_at_the_verifier_threshold_are_hand_computable():
    d = np.array([0.1, 0.9, 1.1, 0.2, 1.5, 1.7])
    same = np.array([True, True, True, False, False, False])
    folds = np.array([9, 9, 10, 9, 10, 10])
    a = accuracy_summary(d, same, folds, threshold=1.0)["at_threshold"]
    assert a["all"]["tpr"] == pytest.approx(2 / 3)
    assert a["all"]["tnr"] == pytest.approx(2 / 3)
    assert a["all"]["accuracy"] == pytest.approx(4 / 6)
    assert a["folds"]["9"] == {"pairs": 3, "accuracy": pytest.approx(2 / 3), "tpr": 1.0,
                               "tnr": 0.0}


def test_each_fold_is_scored_with_the_threshold_of_the_other_folds():
    # fold 9 separates at 1.0, fold 10 at 2.0: each fold gets the other's threshold
    d = np.array([0.5, 1.5, 0.6, 1.6, 1.5, 2.5, 1.6, 2.6])
    same = np.array([True, False, True, False, True, False, True, False])
    folds = np.array([9, 9, 9, 9, 10, 10, 10, 10])
    cross = accuracy_summary(d, same, folds, threshold=1.0)["per_fold_cross"]
    assert 1.6 < cross["9"]["threshold"] <= 2.5
    assert cross["9"]["accuracy"] == 0.5
    assert 0.6 < cross["10"]["threshold"] <= 1.5


def test_too_few_pairs_for_ten_folds_is_reported_not_raised():
    a = accuracy_summary(np.array([0.1, 1.9]), np.array([True, False]), np.zeros(2), 1.0)
    assert "skipped" in a["kfold"]
    assert a["at_threshold"]["all"]["accuracy"] == 1.0
