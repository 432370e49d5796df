"""Runner helpers: the --limit subset, --shard parsing, cache keys, the random reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from region_verifier import RegionVerifier

from xfr.data.lfw import Pair
from xfr.evaluation.runner import limit_pairs, model_fingerprint, parse_shard, random_maps


def pairs(n_pos: int, n_neg: int) -> list[Pair]:
    return ([Pair(Path(f"p{i}a"), Path(f"p{i}b"), True, 1) for i in range(n_pos)]
            + [Pair(Path(f"n{i}a"), Path(f"n{i}b"), False, 1) for i in range(n_neg)])


def test_limit_keeps_half_genuine_half_impostor_pairs_in_file_order():
    ps = pairs(300, 300)
    idx = limit_pairs(ps, 40, seed=0)
    assert len(idx) == 40 and idx == sorted(idx)
    assert sum(ps[i].same for i in idx) == 20
    assert idx != list(range(20)) + list(range(300, 320))  # a random draw, not the file's head


def test_a_larger_limit_contains_a_smaller_one_with_the_same_seed():
    ps = pairs(300, 300)
    small, large = set(limit_pairs(ps, 30, 7)), set(limit_pairs(ps, 100, 7))
    assert small <= large
    assert limit_pairs(ps, 30, 7) == limit_pairs(ps, 30, 7)
    assert set(limit_pairs(ps, 30, 8)) != small


def test_no_limit_or_a_limit_above_the_size_keeps_everything():
    ps = pairs(3, 2)
    assert limit_pairs(ps, None) == limit_pairs(ps, 99) == [0, 1, 2, 3, 4]


def test_parse_shard_is_one_based():
    assert parse_shard("1/4") == (1, 4) and parse_shard("4/4") == (4, 4)
    for bad in ("0/4", "5/4", "1-4", "a/b", "1/0"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)


def test_fingerprint_changes_with_weights_and_threshold():
    import torch

    from xfr import registry

    torch.manual_seed(0)
    v = registry.create("verifier", "face-vit", patch="conv", dim=32, depth=1, heads=2,
                        mlp_dim=64)
    a = model_fingerprint(v)
    assert model_fingerprint(v) == a
    v.threshold += 0.1
    b = model_fingerprint(v)
    assert b != a
    with torch.no_grad():
        next(v.model.parameters()).add_(1e-3)
    assert model_fingerprint(v) not in (a, b)
    assert model_fingerprint(RegionVerifier(seed=1)) != model_fingerprint(RegionVerifier(seed=2))


def test_random_reference_maps_are_per_pair_seeded_and_smooth():
    a = random_maps(["k1", "k2"], 0, (112, 112))
    assert a.shape == (2, 2, 112, 112)
    np.testing.assert_array_equal(a[1], random_maps(["k2"], 0, (112, 112))[0])  # batch-free
    assert not np.allclose(a[0], random_maps(["k1"], 1, (112, 112))[0])
    # blobs, not pixel noise: neighbouring pixels are close
    assert np.abs(np.diff(a, axis=-1)).mean() < 0.05
