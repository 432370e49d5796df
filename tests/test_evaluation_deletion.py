"""Deletion/insertion curves (paper Fig. 2) on a verifier and heatmaps where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from region_verifier import RegionVerifier, random_faces, region_map

from xfr.evaluation.deletion import (
    CPU_EMBED_CHUNK,
    DEFAULT_FRACTIONS,
    auc,
    curve_distances,
    embed_chunk,
    perturbed,
    pixel_ranks,
    rate_curve,
    step_counts,
)

REGION = (slice(0, 56), slice(0, 56))  # the top-left quarter: 25 % of the pixels
F = np.asarray(DEFAULT_FRACTIONS)


def positive_pairs(n: int = 6, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    probes = random_faces(n, seed)
    noise = torch.randn(probes.shape, generator=torch.Generator().manual_seed(seed + 100))
    return probes, (probes + 4 * noise).clamp(0, 255)


def maps_for(n: int, inside: float, outside: float) -> np.ndarray:
    return np.stack([region_map(REGION, inside, outside)] * n)


def recall(verifier: RegionVerifier, probes, galleries, maps, mode="deletion") -> np.ndarray:
    d = curve_distances(verifier, probes, galleries, maps, mode=mode)
    return rate_curve(d, verifier.threshold, positive=True).mean(axis=0)


def test_positive_pairs_are_accepted_before_any_deletion():
    v = RegionVerifier()
    probes, galleries = positive_pairs()
    assert (v.distance(v.embed(probes), v.embed(galleries)) < v.threshold).all()


def test_heatmap_on_the_seen_region_drops_recall_to_zero_once_that_region_is_removed():
    v = RegionVerifier()
    probes, galleries = positive_pairs()
    r = recall(v, probes, galleries, maps_for(6, 1.0, 0.0))
    assert r[0] == 1.0
    assert (r[F >= 0.25] == 0.0).all(), r


def test_heatmap_on_the_opposite_region_keeps_recall_until_the_region_is_reached():
    v = RegionVerifier()
    probes, galleries = positive_pairs()
    r = recall(v, probes, galleries, maps_for(6, 0.0, 1.0))  # the seen region comes last
    assert (r[F <= 0.7] == 1.0).all(), r
    assert r[-1] == 0.0  # everything removed: a black probe


def test_faithful_heatmap_has_lower_deletion_auc_and_higher_insertion_auc():
    v = RegionVerifier()
    probes, galleries = positive_pairs()
    good, bad = maps_for(6, 1.0, 0.0), maps_for(6, 0.0, 1.0)
    del_good = auc(F, recall(v, probes, galleries, good))
    del_bad = auc(F, recall(v, probes, galleries, bad))
    ins_good = auc(F, recall(v, probes, galleries, good, "insertion"))
    ins_bad = auc(F, recall(v, probes, galleries, bad, "insertion"))
    assert del_good <= 0.2 < 0.7 <= del_bad
    assert ins_good >= 0.7 > 0.3 >= ins_bad


def test_insertion_reveals_the_seen_region_first():
    v = RegionVerifier()
    probes, galleries = positive_pairs()
    r = recall(v, probes, galleries, maps_for(6, 1.0, 0.0), mode="insertion")
    assert r[0] == 0.0  # a black probe
    assert (r[F >= 0.3] == 1.0).all(), r


def test_negative_pairs_masked_by_their_own_maps_lose_their_difference():
    v = RegionVerifier()
    probes, galleries = random_faces(6, 2), random_faces(6, 3)
    assert (v.distance(v.embed(probes), v.embed(galleries)) >= v.threshold).all()
    good = maps_for(6, 1.0, 0.0)
    d = curve_distances(v, probes, galleries, good, good)
    tnr = rate_curve(d, v.threshold, positive=False).mean(axis=0)
    assert tnr[0] == 1.0 and (tnr[F >= 0.3] == 0.0).all(), tnr
    bad = maps_for(6, 0.0, 1.0)
    d = curve_distances(v, probes, galleries, bad, bad)
    tnr_bad = rate_curve(d, v.threshold, positive=False).mean(axis=0)
    assert (tnr_bad[F <= 0.7] == 1.0).all() and tnr_bad[-1] == 0.0, tnr_bad


def test_only_the_probe_is_perturbed_for_positive_pairs():
    v = RegionVerifier()
    probes, galleries = positive_pairs(3)
    d = curve_distances(v, probes, galleries, maps_for(3, 1.0, 0.0), fractions=(0.0, 1.0))
    # a black probe embeds to zero: distance 1 to the untouched (unit) gallery embedding
    np.testing.assert_allclose(d[:, 1], 1.0, atol=1e-6)


def test_auc_of_hand_computed_curves():
    assert auc([0, 0.5, 1], [1, 1, 1]) == pytest.approx(1.0)
    assert auc([0, 0.5, 1], [1, 0, 0]) == pytest.approx(0.25)
    assert auc([0, 0.25, 1], [0, 1, 1]) == pytest.approx(0.125 + 0.75)
    np.testing.assert_allclose(auc([0, 1], np.array([[1, 0], [0, 0]])), [0.5, 0.0])


def test_auc_rejects_mismatched_or_bad_fractions():
    with pytest.raises(ValueError, match="steps"):
        auc([0, 1], [1, 0, 0])
    with pytest.raises(ValueError, match="increasing"):
        auc([0, 0.5, 0.5], [1, 1, 1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        auc([0, 1.5], [1, 1])


def test_curves_do_not_depend_on_the_batch_size():
    v = RegionVerifier()
    probes, galleries = positive_pairs(5)
    maps = np.random.default_rng(0).random((5, 112, 112)).astype(np.float32)
    a = curve_distances(v, probes, galleries, maps, batch_size=3)
    b = curve_distances(v, probes, galleries, maps, batch_size=4096)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_all_steps_of_all_pairs_go_through_few_large_embedding_calls():
    v = RegionVerifier()
    probes, galleries = positive_pairs(8)
    curve_distances(v, probes, galleries, maps_for(8, 1.0, 0.0), batch_size=512)
    # originals (2 calls), the blank image (1), all 9 inner steps of all 8 pairs (1)
    assert v.calls == 4
    # the 0 % and 100 % steps are not embedded per pair
    assert v.images_seen == 8 + 8 + 1 + 8 * 9


def test_known_original_and_blank_embeddings_are_not_recomputed():
    v = RegionVerifier()
    probes, galleries = positive_pairs(8)
    known = (v.embed(probes), v.embed(galleries))
    blank = v.embed(torch.zeros_like(probes[:1]))[0]
    expected = curve_distances(v, probes, galleries, maps_for(8, 1.0, 0.0))
    v.calls = 0
    d = curve_distances(v, probes, galleries, maps_for(8, 1.0, 0.0), embeddings=known,
                        blank=blank)
    assert v.calls == 1
    np.testing.assert_allclose(d, expected, atol=1e-6)
    with pytest.raises(ValueError, match="rows"):
        curve_distances(v, probes, galleries, maps_for(8, 1.0, 0.0),
                        embeddings=(known[0][:2], known[1]))


def test_only_the_faces_a_step_reads_are_embedded():
    probes, galleries = positive_pairs(4)
    maps = maps_for(4, 1.0, 0.0)
    full = curve_distances(RegionVerifier(), probes, galleries, maps)
    # without the 0 % step no unperturbed probe is embedded: galleries (4) + 9 inner steps
    # of 4 pairs + the blank image; the steps equal those of the whole curve
    v = RegionVerifier()
    inner = curve_distances(v, probes, galleries, maps, fractions=F[1:])
    assert v.images_seen == 4 + 4 * 9 + 1
    np.testing.assert_array_equal(inner, full[:, 1:])
    # without the 100 % step no blank image either; negative pairs (both faces perturbed)
    # then embed no unperturbed face at all
    v = RegionVerifier()
    both = curve_distances(v, probes, galleries, maps, maps, fractions=F[1:-1])
    assert v.images_seen == 2 * 4 * 9
    np.testing.assert_array_equal(
        both, curve_distances(RegionVerifier(), probes, galleries, maps, maps)[:, 1:-1])


def test_unperturbed_and_blank_steps_equal_a_direct_embedding():
    v = RegionVerifier()
    probes, galleries = positive_pairs(2)
    d = curve_distances(v, probes, galleries, maps_for(2, 1.0, 0.0), fractions=(0.0, 1.0))
    direct0 = v.distance(v.embed(probes), v.embed(galleries)).numpy()
    direct1 = v.distance(v.embed(torch.zeros_like(probes)), v.embed(galleries)).numpy()
    np.testing.assert_allclose(d[:, 0], direct0, atol=1e-6)
    np.testing.assert_allclose(d[:, 1], direct1, atol=1e-6)


def test_pixel_ranks_order_by_descending_value():
    m = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    r = pixel_ranks(m, [0])
    assert r[0, 3, 3] == 0 and r[0, 0, 0] == 15
    assert sorted(r.ravel().tolist()) == list(range(16))


def test_equal_heatmap_values_are_removed_in_random_not_raster_order():
    flat = np.zeros((1, 112, 112), np.float32)
    r = pixel_ranks(flat, [3])[0]
    first = r < 112 * 112 // 10
    # raster order would take the top 11 rows; a random order spreads over the whole face
    assert 0.4 < first[56:].sum() / first.sum() < 0.6
    np.testing.assert_array_equal(r, pixel_ranks(flat, [3])[0])  # seeded
    assert not np.array_equal(r, pixel_ranks(flat, [4])[0])


def test_step_counts_and_perturbed_images():
    counts = step_counts([0, 0.5, 1], 4)
    assert counts.tolist() == [0, 2, 4]
    img = torch.ones(1, 3, 2, 2)
    ranks = torch.tensor([[[0, 1], [2, 3]]])
    dele = perturbed(img, ranks, counts, "deletion")[0]
    ins = perturbed(img, ranks, counts, "insertion")[0]
    assert dele[1, 0].tolist() == [[0, 0], [1, 1]]
    assert ins[1, 0].tolist() == [[1, 1], [0, 0]]
    assert dele[2].sum() == 0 and ins[0].sum() == 0


def test_bad_inputs_raise_clear_errors():
    v = RegionVerifier()
    probes, galleries = positive_pairs(2)
    with pytest.raises(ValueError, match="probe_maps"):
        curve_distances(v, probes, galleries, np.zeros((3, 112, 112)))
    with pytest.raises(ValueError, match="mode"):
        curve_distances(v, probes, galleries, maps_for(2, 1, 0), mode="erase")
    with pytest.raises(ValueError, match="NaN"):
        pixel_ranks(np.full((1, 4, 4), np.nan), [0])
    with pytest.raises(ValueError, match="equal"):
        curve_distances(v, probes, galleries[:1], maps_for(2, 1, 0))


def _lexsort_ranks(maps: np.ndarray, seeds: list[int]) -> np.ndarray:
    """The definition of pixel_ranks: descending map, ties by a seeded jitter, then by index."""
    n, h, w = maps.shape
    ranks = np.empty((n, h * w), dtype=np.int32)
    for i in range(n):
        jitter = np.random.default_rng(seeds[i]).random(h * w)
        ranks[i, np.lexsort((jitter, -maps[i].ravel()))] = np.arange(h * w)
    return ranks.reshape(n, h, w)


@pytest.mark.parametrize("levels", [None, 2, 5, 200, 5000])
def test_pixel_ranks_equal_one_sort_by_value_jitter_and_index(levels):
    rng = np.random.default_rng(levels or 0)
    maps = rng.random((6, 40, 30))
    if levels is not None:  # plateaus of equal values, few (200, 5000 levels) to most (2)
        maps = np.round(maps * levels) / levels
    maps[0] = 0.0  # one map entirely tied, with -0.0 among its zeros
    maps[0, ::3] = -0.0
    seeds = list(rng.integers(0, 2**31, 6))
    np.testing.assert_array_equal(pixel_ranks(maps, seeds), _lexsort_ranks(maps, seeds))


class CPURegionVerifier(RegionVerifier):
    """The region verifier, saying that it runs on the CPU (as the ViT verifiers do)."""

    device = torch.device("cpu")

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        self.sizes.append(images.shape[0])
        return super().embed(images)


def test_a_cpu_verifier_gets_small_embedding_calls_and_the_same_distances():
    probes, galleries = positive_pairs(9)
    maps = np.random.default_rng(2).random((9, 112, 112)).astype(np.float32)
    cpu = CPURegionVerifier()
    assert embed_chunk(cpu, 512) == CPU_EMBED_CHUNK and embed_chunk(cpu, 8) == 8
    assert embed_chunk(RegionVerifier(), 512) == 512  # no device: a black box decides
    d = curve_distances(cpu, probes, galleries, maps, maps)
    assert max(cpu.sizes) <= CPU_EMBED_CHUNK
    # originals 9 + 9, the blank, 9 inner steps of 9 probes and 9 galleries
    assert sum(cpu.sizes) == 9 + 9 + 1 + 2 * 9 * 9
    expected = curve_distances(RegionVerifier(), probes, galleries, maps, maps)
    np.testing.assert_allclose(d, expected, atol=1e-6)
    with pytest.raises(ValueError, match="batch_size"):
        curve_distances(cpu, probes, galleries, maps, batch_size=0)
