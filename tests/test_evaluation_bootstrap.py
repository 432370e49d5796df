"""Bootstrap confidence intervals (Table 1 and curve areas)."""

from __future__ import annotations

import numpy as np
import pytest

from xfr.evaluation.bootstrap import bootstrap_ci


def sample(n: int = 200, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).exponential(3.0, n)


def test_interval_contains_the_sample_mean():
    x = sample()
    ci = bootstrap_ci(x, n_boot=1000, seed=1)
    assert ci.estimate == pytest.approx(x.mean())
    assert ci.low < x.mean() < ci.high
    assert ci.n == 200 and ci.confidence == 0.95


def test_interval_is_deterministic_with_a_seed_and_changes_with_another():
    x = sample()
    a, b = bootstrap_ci(x, seed=5), bootstrap_ci(x, seed=5)
    c = bootstrap_ci(x, seed=6)
    assert (a.low, a.high) == (b.low, b.high)
    assert (a.low, a.high) != (c.low, c.high)


def test_interval_narrows_with_more_pairs_and_widens_with_confidence():
    small, large = bootstrap_ci(sample(50)), bootstrap_ci(sample(2000))
    assert large.high - large.low < small.high - small.low
    narrow = bootstrap_ci(sample(), confidence=0.5)
    wide = bootstrap_ci(sample(), confidence=0.99)
    assert wide.high - wide.low > narrow.high - narrow.low


def test_interval_of_a_known_distribution_covers_its_true_mean_at_the_nominal_rate():
    # 95 % intervals of 60 samples of Exp(mean 3): about 95 % of them contain 3
    hits = sum(
        bootstrap_ci(sample(60, seed), n_boot=400, seed=seed).low
        < 3.0
        < bootstrap_ci(sample(60, seed), n_boot=400, seed=seed).high
        for seed in range(60)
    )
    assert 50 <= hits <= 60


def test_constant_sample_has_a_zero_width_interval():
    ci = bootstrap_ci(np.full(10, 2.5))
    assert ci.low == ci.high == ci.estimate == 2.5


def test_empty_sample_gives_nan_not_an_error():
    ci = bootstrap_ci(np.array([]))
    assert ci.n == 0 and np.isnan(ci.estimate) and ci.format() == "n/a"


def test_custom_statistic_median():
    x = np.array([1.0, 2.0, 3.0, 100.0])
    ci = bootstrap_ci(x, statistic=lambda s: np.median(s, axis=1), seed=0)
    assert ci.estimate == 2.5


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(np.ones(3), confidence=1.5)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci(np.ones(3), n_boot=0)
