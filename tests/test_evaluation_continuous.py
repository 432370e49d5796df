"""The continuous reading of deletion/insertion curves, which direction is better, and the
curve steps (paper Sec. 4, Fig. 2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from region_verifier import RegionVerifier, random_faces, region_map

from xfr.evaluation.deletion import (
    DEFAULT_FRACTIONS,
    auc,
    better,
    continuous_curve,
    curve_distances,
    step_fractions,
    unperturbed_step,
)
from xfr.evaluation.results import per_pair_curves

REGION = (slice(0, 56), slice(0, 56))  # what RegionVerifier sees: 25 % of the pixels
F = np.asarray(step_fractions(20))


def test_ten_steps_are_exactly_the_default_fractions_so_old_caches_stay_valid():
    assert step_fractions(10) == DEFAULT_FRACTIONS
    assert DEFAULT_FRACTIONS == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    f = step_fractions(50)
    assert len(f) == 51 and f[0] == 0.0 and f[-1] == 1.0 and f[1] == 0.02
    np.testing.assert_allclose(np.diff(f), 0.02)
    assert step_fractions(3) == (0.0, 0.3333333333, 0.6666666667, 1.0)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="steps"):
            step_fractions(bad)


def test_continuous_curve_is_the_distance_change_over_the_threshold():
    d = np.array([[1.0, 1.5, 2.0], [0.4, 0.2, 0.0]])
    np.testing.assert_allclose(continuous_curve(d, np.array([1.0, 0.4]), 2.0),
                               [[0.0, 0.25, 0.5], [0.0, -0.1, -0.2]])
    with pytest.raises(ValueError, match="unperturbed"):
        continuous_curve(d, np.array([1.0]), 2.0)
    with pytest.raises(ValueError, match="threshold"):
        continuous_curve(d, np.array([1.0, 0.4]), 0.0)


def test_the_unperturbed_step_is_the_curves_own_when_the_fractions_include_it():
    assert unperturbed_step([0, 0.5, 1], "deletion") == 0
    assert unperturbed_step([0, 0.5, 1], "insertion") == 2
    assert unperturbed_step([0.1, 0.5, 1], "deletion") is None
    assert unperturbed_step([0, 0.5, 0.9], "insertion") is None
    # insertion: d_0 is the last step (everything revealed), not the first (a black face)
    d = np.array([[3.0, 2.0, 1.0]])
    c = per_pair_curves("continuous", np.array([0, 0.5, 1]), d, np.array([9.0]), 1.0, True,
                        "insertion")
    np.testing.assert_allclose(c, [[2.0, 1.0, 0.0]])
    # fractions without the unperturbed step: the verification distance is d_0
    c = per_pair_curves("continuous", np.array([0.2, 0.5]), d[:, :2], np.array([1.0]), 2.0,
                        True, "deletion")
    np.testing.assert_allclose(c, [[1.0, 0.5]])
    r = per_pair_curves("rate", np.array([0, 0.5, 1]), d, np.array([1.0]), 1.5, True,
                        "deletion")
    np.testing.assert_array_equal(r, [[0.0, 0.0, 1.0]])  # accepted below the threshold


@pytest.mark.parametrize("mode", ["deletion", "insertion"])
@pytest.mark.parametrize("positive", [True, False])
def test_a_faithful_map_is_on_the_better_side_for_every_curve_kind(mode, positive):
    """The direction table (deletion.BETTER) is checked, not restated: on a verifier that sees
    one region only, the map covering that region must have the better area, the map covering
    everything else the worse one, for the rate and the continuous reading."""
    v = RegionVerifier()
    n = 6
    probes = random_faces(n, 1)
    if positive:
        noise = torch.randn(probes.shape, generator=torch.Generator().manual_seed(7))
        galleries = (probes + 4 * noise).clamp(0, 255)
    else:
        galleries = random_faces(n, 2)
    d0 = v.distance(v.embed(probes), v.embed(galleries)).double().numpy()
    assert ((d0 < v.threshold) == positive).all()
    th = v.threshold
    areas = {}
    for name, (inside, outside) in {"faithful": (1.0, 0.0), "unfaithful": (0.0, 1.0)}.items():
        maps = np.stack([region_map(REGION, inside, outside)] * n)
        d = curve_distances(v, probes, galleries, maps, None if positive else maps,
                            fractions=F, mode=mode)
        for kind in ("rate", "continuous"):
            c = per_pair_curves(kind, F, d, d0, th, positive, mode)
            areas[name, kind] = float(auc(F, c).mean())
    decision = "positive" if positive else "negative"
    for kind in ("rate", "continuous"):
        good, bad = areas["faithful", kind], areas["unfaithful", kind]
        if better(kind, mode, decision) == "lower":
            assert good < bad, (kind, good, bad)
        else:
            assert good > bad, (kind, good, bad)


def test_better_refuses_unknown_curves():
    with pytest.raises(ValueError, match="kinds"):
        better("smooth", "deletion", "positive")
