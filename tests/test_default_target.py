"""The default configuration on the shipped (headless) model gives maps that are stable in
floating point (docs/method.md, "Targets" and "Precision"): for every attention generator under
the paper explainer's defaults, the maps of 20 held-out LFW faces computed with the model in
float32 and in float64 agree in rank order (Spearman >= 0.99 on every face). Computing the
relevance in the model's float32 fails this.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from xfr import registry

pytestmark = [pytest.mark.lfw, pytest.mark.slow]


@pytest.fixture(scope="module")
def held_out_faces(lfw_root, default_verifier):
    from xfr.api import prepare
    from xfr.data.pairs import read_pair_list, select_folds
    from xfr.training.finalize import fixed_sample

    pairs = select_folds(read_pair_list(lfw_root / "pairs.txt", lfw_root), {9, 10})
    sample = fixed_sample(pairs, [9, 10], n=10, seed=3)
    from xfr.api import to_tensor

    probes = to_tensor(prepare([p.probe for p in sample]))
    galleries = to_tensor(prepare([p.gallery for p in sample]))
    return probes, galleries


def _maps(verifier, generator, probes, galleries, target):
    with torch.no_grad():
        e_p, e_g = verifier.embed(probes), verifier.embed(galleries)
    faces = torch.cat([probes, galleries])
    reference = torch.cat([e_g, e_p]) if target == "similarity" else None
    return generator(verifier, faces, target=target, reference=reference).numpy()


def _worst_rank_agreement(verifier, name, probes, galleries, target, **options) -> float:
    v64 = copy.deepcopy(verifier)
    v64.model.double()
    gen = registry.create("attention", name, **options)
    m32 = _maps(verifier, gen, probes, galleries, target)
    m64 = _maps(v64, gen, probes.double(), galleries.double(), target)
    return min(float(spearmanr(a.ravel(), b.ravel())[0]) for a, b in zip(m32, m64, strict=True))


@pytest.mark.parametrize("target", ["auto", "similarity"])
@pytest.mark.parametrize("name", ["rollout", "vit-lrp", "nograd-lrp"])
def test_default_configurations_keep_their_rank_order_in_float64(
    default_verifier, held_out_faces, name: str, target: str
) -> None:
    """The explainer's default target, and the similarity target, under each generator's
    default options."""
    probes, galleries = held_out_faces
    assert probes.shape[0] + galleries.shape[0] == 20
    assert registry.create("explainer", "paper").options["target"] == "auto"
    worst = _worst_rank_agreement(default_verifier, name, probes, galleries, target)
    assert worst >= 0.99, f"{name}/{target}: Spearman float32 vs float64 down to {worst:.4f}"


def test_relevance_in_the_models_float32_changes_rank_order(
    default_verifier, held_out_faces
) -> None:
    """Why the LRP generators compute in float64 by default: in the model's float32 the
    relevance of some faces is rounding noise (e.g. a pair whose cosine similarity is near 0).
    With the v2 default model this shows in vit-lrp's similarity target (Spearman 0.980 on
    these 20 faces); the other generator/target combinations agree to >= 0.996 in float32
    (with the v1 model both generators fell below 0.99), so the float64 default is kept for
    both LRP generators on the strength of the worst case."""
    probes, galleries = held_out_faces
    worst = {(name, target): _worst_rank_agreement(default_verifier, name, probes, galleries,
                                                   target, precision="model")
             for name in ("vit-lrp", "nograd-lrp") for target in ("auto", "similarity")}
    assert min(worst.values()) < 0.99, worst


def test_the_explainer_reports_the_target_it_used(default_verifier, held_out_faces) -> None:
    probes, galleries = held_out_faces
    e = registry.create("explainer", "paper").explain_pairs(default_verifier, probes[:1],
                                                            galleries[:1])[0]
    assert e.notes["target"] == "embedding"  # auto, on a model without an identity head
    assert np.isfinite(e.attention_maps).all()
