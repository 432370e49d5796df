"""The relevance explainer (xfr's measured default; docs/faithfulness.md) on the bundled model
and real LFW faces: every stage, both decisions, its options and its errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xfr import registry
from xfr.api import prepare, to_tensor
from xfr.errors import OptionError, OptionTypeError, UnknownNameError
from xfr.interfaces.vocabulary import decide


@pytest.fixture(scope="module")
def faces(lfw_root):
    """Two photos of one person and one of another (held-out LFW people, real faces)."""
    from xfr.data.lfw import image_folder

    folder = image_folder(lfw_root)
    paths = [folder / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg",
             folder / "Aaron_Peirsol" / "Aaron_Peirsol_0002.jpg",
             folder / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg"]
    return to_tensor(prepare([str(p) for p in paths]))


@pytest.fixture(scope="module")
def explained(faces, default_verifier):
    """The genuine pair and the impostor pair, explained in one call."""
    probes = torch.stack([faces[0], faces[0]])
    galleries = torch.stack([faces[1], faces[2]])
    return registry.create("explainer", "relevance").explain_pairs(
        default_verifier, probes, galleries)


def test_both_decisions_get_heatmaps_of_their_own(explained, default_verifier):
    genuine, impostor = explained
    assert [e.decision for e in explained] == ["positive", "negative"]
    for e in explained:
        assert e.decision == decide(e.distance, default_verifier.threshold)
        assert e.heatmaps.shape == (2, 112, 112) and e.heatmaps.dtype == np.float32
        assert np.isfinite(e.heatmaps).all() and e.heatmaps.min() >= 0
        assert e.attention_maps.shape == (2, 112, 112)
        assert e.notes["model_passes"] == 4
        assert set(e.notes["seconds_per_pair"]) == {"embed", "attention", "smooth"}
    # the probe is the same photo in both pairs: its map depends on the other face
    a, b = genuine.heatmaps[0], impostor.heatmaps[0]
    assert not np.allclose(a, b)


def test_the_heatmap_is_the_smoothed_pairing_of_the_raw_maps(explained):
    from xfr_plugins.explainers.relevance import gaussian_size, pair_maps

    from xfr import kernels

    e = explained[0]
    sigma = e.notes["sigma"]
    paired = pair_maps(e.attention_maps[:1], e.attention_maps[1:], e.notes["pairing"])[0]
    expected = kernels.gaussian(np.ascontiguousarray(paired), gaussian_size(sigma, 112), sigma)
    np.testing.assert_allclose(e.heatmaps, expected, rtol=0, atol=1e-6)


def test_pairings_and_no_smoothing(faces, default_verifier):
    ex = registry.create("explainer", "relevance", sigma=0)
    own = ex.explain_pairs(default_verifier, faces[:1], faces[1:2], pairing="own")[0]
    mean = ex.explain_pairs(default_verifier, faces[:1], faces[1:2], pairing="mean")[0]
    np.testing.assert_array_equal(mean.heatmaps[0], mean.heatmaps[1])
    np.testing.assert_allclose(mean.heatmaps[0], own.heatmaps.mean(axis=0), atol=1e-6)
    assert own.heatmaps.max() == pytest.approx(1.0)  # unsmoothed: the unit-range raw map


@pytest.mark.parametrize(("options", "error", "text"), [
    ({"pairing": "median"}, OptionError, "relevance: pairing must be one of 'own', 'mean' or a "
                                         "dict"),
    ({"sigma": -1}, OptionError, "relevance: sigma must be a number >= 0"),
    ({"sigma": "8"}, OptionTypeError, "relevance: sigma must be a number"),
    ({"generator": "no-such"}, UnknownNameError, "no-such"),
    ({"target": "logits"}, OptionError, "relevance: target must be one of 'decision', 'auto', "
                                        "'logit', 'embedding', 'similarity', got 'logits'"),
    ({"batch_size": 0}, OptionError, "relevance: batch_size must be an integer >= 1, got 0"),
    ({"colour": "red"}, OptionTypeError, "relevance: unknown option(s) 'colour'; options: "),
])
def test_bad_options_are_one_clear_error_before_any_model_pass(options, error, text):
    with pytest.raises(error) as info:
        registry.create("explainer", "relevance", **options)
    assert text in str(info.value)


def test_a_black_box_verifier_is_refused_with_advice(faces):
    class BlackBox:
        name = "black-box"
        threshold = 1.0

    with pytest.raises(OptionTypeError, match="perturbation method"):
        registry.create("explainer", "relevance").explain_pairs(BlackBox(), faces[:1],
                                                                faces[1:2])


def test_a_negative_decision_explains_the_dissimilarity(faces, default_verifier, explained):
    """The decision target: the impostor pair's maps are the generator's maps of ``-cos``
    (the similarity to the negated other embedding); the genuine pair's of ``cos``."""
    generator = registry.create("attention", explained[1].notes["generator"])
    pair = torch.stack([faces[0], faces[2]])
    e = default_verifier.embed(pair)
    dissimilar = generator(default_verifier, pair, target="similarity",
                           reference=-torch.stack([e[1], e[0]]))
    similar = generator(default_verifier, pair, target="similarity",
                        reference=torch.stack([e[1], e[0]]))
    np.testing.assert_allclose(explained[1].attention_maps, np.asarray(dissimilar), atol=1e-5)
    assert not np.allclose(explained[1].attention_maps, np.asarray(similar), atol=1e-3)
    assert explained[1].notes["explains"] == "dissimilarity"
    assert explained[0].notes["explains"] == "similarity"


def test_options_per_decision(faces, default_verifier):
    ex = registry.create("explainer", "relevance",
                         pairing={"positive": "own", "negative": "mean"},
                         sigma={"positive": 0, "negative": 8})
    assert ex.options["sigma"] == {"positive": 0.0, "negative": 8.0}
    with pytest.raises(OptionError, match="give a value for 'negative' too"):
        registry.create("explainer", "relevance", sigma={"positive": 4})
    with pytest.raises(OptionError) as info:
        registry.create("explainer", "relevance", pairing={"positive": "own", "neg": "mean"})
    assert str(info.value).startswith("relevance: pairing must be one of 'own', 'mean' or a dict "
                                      "{'positive' | 'negative': 'own' | 'mean'}, got ")
