"""Paired differences of per-pair curve areas to the references, and their words (paper
Sec. 4, Fig. 2, read against references that know nothing about the model)."""

from __future__ import annotations

import numpy as np
import pytest

from xfr.evaluation.deletion import DEFAULT_FRACTIONS, step_fractions
from xfr.evaluation.report import _step_names, shown_steps
from xfr.evaluation.results import difference_words, paired_difference


def aucs(values: np.ndarray, prefix: str = "p") -> dict[str, float]:
    return {f"{prefix}{i}": float(v) for i, v in enumerate(values)}


def test_paired_difference_beats_is_worse_or_shows_no_difference():
    rng = np.random.default_rng(0)
    ref = rng.random(40)
    lower = aucs(ref - 0.1 + 0.02 * rng.standard_normal(40))
    d = paired_difference(lower, aucs(ref), "lower", n_boot=500, seed=0)
    assert d["verdict"] == "better" and d["n"] == 40 and d["high"] < 0
    assert d["delta"] == pytest.approx(np.mean([lower[k] - v for k, v in aucs(ref).items()]))
    assert difference_words("X", "random-shared", d) == (
        f"X beats random-shared (Δ={d['delta']:.3f}, CI [{d['low']:.3f}, {d['high']:.3f}], "
        "n=40)")
    worse = paired_difference(lower, aucs(ref), "higher", n_boot=500, seed=0)
    assert worse["verdict"] == "worse"
    assert difference_words("X", "random", worse).startswith("X is worse than random (Δ=")
    same = aucs(ref + 0.05 * rng.standard_normal(40))
    none = paired_difference(same, aucs(ref), "lower", n_boot=500, seed=0)
    assert none["verdict"] == "no difference shown" and none["low"] < 0 < none["high"]
    assert "no difference shown" in difference_words("X", "center-blob", none)


def test_paired_difference_uses_only_the_pairs_both_methods_have():
    ref = aucs(np.linspace(0.2, 0.8, 30))
    method = {k: v - 0.1 for k, v in ref.items()}
    method.update(aucs(np.full(50, 9.0), prefix="only-method-"))  # would flip the verdict
    ref_extra = {**ref, **aucs(np.full(50, -9.0), prefix="only-reference-")}
    d = paired_difference(method, ref_extra, "lower", n_boot=300, seed=1)
    assert d["n"] == 30 and d["delta"] == pytest.approx(-0.1) and d["verdict"] == "better"
    assert paired_difference({"a": 1.0}, {"b": 1.0}, "lower", n_boot=10, seed=0)["verdict"] \
        == "no common pairs"


def test_too_few_pairs_give_the_difference_but_no_verdict():
    ref = aucs(np.linspace(0.2, 0.8, 5))
    d = paired_difference({k: v - 0.3 for k, v in ref.items()}, ref, "lower", n_boot=200,
                          seed=0)
    assert d["verdict"] == "too few pairs" and d["delta"] == pytest.approx(-0.3)
    with pytest.raises(ValueError, match="direction"):
        paired_difference(ref, ref, "smaller", n_boot=10, seed=0)


def test_markdown_shows_at_most_eleven_step_columns_and_csv_names_stay_distinct():
    assert shown_steps(list(DEFAULT_FRACTIONS)) == list(range(11))
    f50 = list(step_fractions(50))
    assert [f50[i] for i in shown_steps(f50)] == list(DEFAULT_FRACTIONS)
    f7 = list(step_fractions(70))
    idx = shown_steps(f7)
    assert 3 <= len(idx) <= 11 and idx[0] == 0 and idx[-1] == 70
    assert _step_names([0.0, 0.1, 1.0]) == ["at_0.00", "at_0.10", "at_1.00"]
    names = _step_names(list(step_fractions(300)))
    assert len(set(names)) == 301
