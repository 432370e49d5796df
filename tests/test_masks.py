"""The built-in mask strategies OIM, UM and N-IUM (paper Sec. 3.2-3.3; docs/method.md,
"Mask strategies"), built through the registry, on a hand-computed case."""

from __future__ import annotations

import numpy as np
import pytest

from xfr import registry
from xfr.interfaces.mask_strategy import MaskStrategy

# Otsu masks B1 (probe), B2 (gallery) and normalised attention maps A1, A2.
B1 = np.array([[1, 1, 0], [0, 1, 0]], dtype=bool)
B2 = np.array([[1, 0, 0], [1, 1, 0]], dtype=bool)
A1 = np.array([[0.8, 0.6, 0.1], [0.2, 1.0, 0.3]], dtype=np.float32)
A2 = np.array([[0.4, 0.3, 0.0], [0.9, 0.5, 0.2]], dtype=np.float32)

# By hand: AND keeps (0,0), (1,1); XOR keeps (0,1), (1,0).
EXPECTED_MASK = {
    "oim": [[1, 0, 0], [0, 1, 0]],
    "um": [[1, 1, 0], [1, 1, 0]],
    "nium": [[0, 1, 0], [1, 0, 0]],
}
# OIM: (B1 A1 + B2 A2)/2 in AND: (.8+.4)/2 = .6, (1+.5)/2 = .75.
# N-IUM: B1 A1 + B2 A2 in XOR: .6 (probe only), .9 (gallery only). UM: the sum of both.
EXPECTED_HEATMAP = {
    "oim": [[0.6, 0.0, 0.0], [0.0, 0.75, 0.0]],
    "um": [[0.6, 0.6, 0.0], [0.9, 0.75, 0.0]],
    "nium": [[0.0, 0.6, 0.0], [0.9, 0.0, 0.0]],
}


@pytest.mark.parametrize("name", ["oim", "um", "nium"])
def test_mask_and_heatmap_match_the_hand_computed_values(name: str) -> None:
    strategy = registry.create("mask", name)
    mask = np.asarray(strategy.combine(B1, B2))
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, np.array(EXPECTED_MASK[name], dtype=bool))
    heat = np.asarray(strategy.heatmap(A1, A2, B1, B2))
    np.testing.assert_allclose(heat, EXPECTED_HEATMAP[name], atol=1e-6)
    assert not heat[~mask].any()  # zero outside the mask


@pytest.mark.parametrize("name", ["oim", "um", "nium"])
def test_a_batch_gives_the_same_result_as_each_pair_alone(name: str) -> None:
    rng = np.random.default_rng(3)
    maps_p = rng.random((4, 16, 16), dtype=np.float32)
    maps_g = rng.random((4, 16, 16), dtype=np.float32)
    masks_p, masks_g = maps_p > 0.5, maps_g > 0.4
    strategy = registry.create("mask", name)
    batch = np.asarray(strategy.heatmap(maps_p, maps_g, masks_p, masks_g))
    combined = np.asarray(strategy.combine(masks_p, masks_g))
    assert batch.shape == combined.shape == (4, 16, 16)
    for i in range(4):
        alone = np.asarray(strategy.heatmap(maps_p[i], maps_g[i], masks_p[i], masks_g[i]))
        np.testing.assert_allclose(batch[i], alone, atol=1e-6)
        np.testing.assert_array_equal(combined[i], strategy.combine(masks_p[i], masks_g[i]))


def test_um_heatmap_is_the_sum_of_oim_and_nium() -> None:
    rng = np.random.default_rng(7)
    a1, a2 = rng.random((2, 3, 20, 20), dtype=np.float32)
    b1, b2 = a1 > 0.6, a2 > 0.5
    oim, um, nium = (
        registry.create("mask", n).heatmap(a1, a2, b1, b2) for n in ("oim", "um", "nium")
    )
    np.testing.assert_allclose(np.asarray(um), np.asarray(oim) + np.asarray(nium), atol=1e-6)


def test_the_decisions_each_strategy_explains() -> None:
    assert registry.create("mask", "oim").decisions == {"positive", "negative"}
    assert registry.create("mask", "um").decisions == {"positive", "negative"}
    assert registry.create("mask", "nium").decisions == {"negative"}


@pytest.mark.parametrize("name", ["oim", "um", "nium"])
def test_each_strategy_implements_the_mask_strategy_contract(name: str) -> None:
    strategy = registry.create("mask", name)
    assert isinstance(strategy, MaskStrategy)
    assert strategy.name == name


def test_masks_of_different_shapes_are_a_value_error() -> None:
    strategy = registry.create("mask", "oim")
    with pytest.raises(ValueError):
        strategy.combine(B1, B2[:, :2])
    with pytest.raises(ValueError):
        strategy.heatmap(A1, A2[:1], B1, B2)


def test_a_nan_map_is_a_value_error() -> None:
    bad = A1.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        registry.create("mask", "um").heatmap(bad, A2, B1, B2)


# The paper's words for each mask (Sec. 3.2-3.3), as sets of pixels: OIM "the intersection of
# both ... masks", UM "the union", N-IUM "the union minus the intersection".
PAPER_SETS = {
    "oim": lambda p, g: p & g,
    "um": lambda p, g: p | g,
    "nium": lambda p, g: (p | g) - (p & g),
}


def _pixels(mask: np.ndarray) -> set[tuple[int, ...]]:
    return {tuple(int(i) for i in ix) for ix in np.argwhere(mask)}


@pytest.mark.parametrize("name", ["oim", "um", "nium"])
def test_each_strategy_is_the_set_operation_of_the_kernels_the_paper_names(name: str) -> None:
    """The mask plugins map OIM / UM / N-IUM onto the kernels' set operations: the operation a
    strategy declares gives, through ``xfr.kernels.combine``, the paper's set of pixels, and its
    heatmap is ``xfr.kernels.combine_maps`` with that operation, bit for bit."""
    from xfr import kernels

    strategy = registry.create("mask", name)
    assert strategy.operation in ("and", "or", "xor")
    rng = np.random.default_rng(11)
    a1, a2 = rng.random((2, 3, 24, 20), dtype=np.float32)
    b1, b2 = a1 > 0.55, a2 > 0.45
    combined = kernels.combine(b1, b2, strategy.operation)
    for i in range(3):
        expected = PAPER_SETS[name](_pixels(b1[i]), _pixels(b2[i]))
        assert _pixels(combined[i]) == expected
    np.testing.assert_array_equal(np.asarray(strategy.combine(b1, b2)), combined)
    np.testing.assert_array_equal(np.asarray(strategy.heatmap(a1, a2, b1, b2)),
                                  kernels.combine_maps(a1, a2, b1, b2, strategy.operation))
    # and on the hand-computed case above
    np.testing.assert_array_equal(kernels.combine(B1, B2, strategy.operation),
                                  np.array(EXPECTED_MASK[name], dtype=bool))
