"""The attention generators on real (small, random) ViT verifiers: the AttentionGenerator
contract (image-sized, finite, [0, 1], float32, batched == one by one), on every face-vit token
embedding and on timm ViTs, found through the registry as a user would find them.
"""

from __future__ import annotations

from typing import Any

import pytest
import timm
import torch
from xfr_plugins.attention.maps import minmax, to_image_maps
from xfr_plugins.verifiers.face_vit import FaceViTVerifier
from xfr_plugins.verifiers.timm_vit import TimmViTVerifier

from xfr import registry
from xfr.interfaces.attention import AttentionGenerator

torch.set_num_threads(1)

GENERATORS: list[tuple[str, dict[str, Any]]] = [
    ("attention", {}),
    ("rollout", {}),
    ("rollout", {"variant": "abnar"}),
    ("vit-lrp", {}),
    ("vit-lrp", {"alpha": 0.5}),
    ("nograd-lrp", {}),
    ("nograd-lrp", {"alpha": 0.5}),
    ("grad-rollout", {}),
]
IDS = [name + "".join(f"-{v}" for v in opts.values()) for name, opts in GENERATORS]


def _face_vit(patch: str = "p8s8", num_classes: int = 5, seed: int = 0) -> FaceViTVerifier:
    torch.manual_seed(seed)
    return FaceViTVerifier.load(None, patch=patch, dim=32, depth=2, heads=2, mlp_dim=64,
                                num_classes=num_classes)


def _timm_vit(**kw: Any) -> TimmViTVerifier:
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64,
                              embed_dim=48, depth=2, num_heads=3, **kw)
    return TimmViTVerifier(model)


def _images(n: int, size: int = 112, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 255


def _check_maps(maps: torch.Tensor, n: int, size: int) -> None:
    assert maps.shape == (n, size, size)
    assert maps.dtype == torch.float32
    assert torch.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1
    flat = maps.flatten(1)
    assert torch.allclose(flat.max(1).values, torch.ones(n))  # min-max normalised
    assert torch.allclose(flat.min(1).values, torch.zeros(n))


def test_registry_lists_every_generator_and_builds_them_with_options() -> None:
    assert {"attention", "rollout", "vit-lrp", "nograd-lrp", "grad-rollout"} <= set(
        registry.names("attention")
    )
    for name, options in GENERATORS:
        gen = registry.create("attention", name, **options)
        assert isinstance(gen, AttentionGenerator)
        assert gen.name == name


@pytest.mark.parametrize(("name", "options"), GENERATORS, ids=IDS)
@pytest.mark.parametrize("patch", ["p8s8", "p12s8", "conv"])
def test_maps_are_image_sized_finite_and_normalised_on_every_face_vit_embedding(
    name: str, options: dict, patch: str
) -> None:
    gen = registry.create("attention", name, **options)
    maps = gen(_face_vit(patch), _images(2))
    _check_maps(maps, 2, 112)


@pytest.mark.parametrize(("name", "options"), GENERATORS, ids=IDS)
@pytest.mark.parametrize(
    "model_options",
    [{"num_classes": 0}, {"num_classes": 7, "qkv_bias": True, "init_values": 0.1}],
    ids=["headless", "head-qkvbias-layerscale"],
)
def test_maps_work_on_timm_vision_transformers(
    name: str, options: dict, model_options: dict
) -> None:
    gen = registry.create("attention", name, **options)
    maps = gen(_timm_vit(**model_options), _images(2, 64))
    _check_maps(maps, 2, 64)


@pytest.mark.parametrize(("name", "options"), GENERATORS, ids=IDS)
def test_a_batch_gives_the_same_maps_as_one_image_at_a_time(name: str, options: dict) -> None:
    verifier = _face_vit()
    images = _images(3)
    gen = registry.create("attention", name, **options)
    batched = gen(verifier, images)
    chunked = registry.create("attention", name, batch_size=2, **options)(verifier, images)
    # float32 batched kernels round differently; min-max can magnify that to ~1e-4 at most
    torch.testing.assert_close(chunked, batched, atol=1e-4, rtol=0)
    for i in range(3):
        single = gen(verifier, images[i:i + 1])
        torch.testing.assert_close(single[0], batched[i], atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["vit-lrp", "nograd-lrp", "grad-rollout"])
def test_float64_chunks_side_by_side_give_the_maps_of_one_chunk_at_a_time(name: str) -> None:
    """On the CPU in float64 the chunks of a batch run on as many workers as torch has threads,
    each with one thread; the maps are those of one chunk at a time, bit for bit, and the
    caller's thread count is restored."""
    verifier = _face_vit()
    images = torch.rand(9, 3, 112, 112, generator=torch.Generator().manual_seed(3)) * 255
    gen = registry.create("attention", name, batch_size=2)  # 5 chunks
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one_at_a_time = gen(verifier, images)
        torch.set_num_threads(3)
        side_by_side = gen(verifier, images)
        assert torch.get_num_threads() == 3
        on_all_threads = registry.create("attention", name, batch_size=2, workers=1)(
            verifier, images)
        two_workers = registry.create("attention", name, batch_size=4, workers=2)(
            verifier, images[:3])  # 3 images for 2 workers: chunks of 2 and 1
    finally:
        torch.set_num_threads(before)
    assert torch.equal(side_by_side, one_at_a_time)
    assert torch.equal(on_all_threads, one_at_a_time)
    assert torch.equal(two_workers, one_at_a_time[:3])


@pytest.mark.parametrize("name", ["vit-lrp", "nograd-lrp", "grad-rollout"])
def test_target_choice_changes_the_gradient_and_relevance_maps(name: str) -> None:
    verifier = _face_vit()
    images = _images(2)
    gen = registry.create("attention", name)
    by_logit = gen(verifier, images, target="logit")
    by_similarity = gen(verifier, images, target="similarity",
                        reference=torch.randn(2, 32))
    assert (by_logit - by_similarity).abs().max() > 1e-3
    torch.testing.assert_close(gen(verifier, images), by_logit)  # auto = logit with a head


def test_auto_target_falls_back_to_the_embedding_without_a_head() -> None:
    verifier = _face_vit(num_classes=0)
    images = _images(2)
    gen = registry.create("attention", "nograd-lrp")
    torch.testing.assert_close(gen(verifier, images), gen(verifier, images, target="embedding"))


def test_rollout_and_raw_attention_do_not_depend_on_the_target() -> None:
    verifier = _face_vit()
    images = _images(2)
    for name in ("attention", "rollout"):
        gen = registry.create("attention", name)
        torch.testing.assert_close(
            gen(verifier, images, target="logit"),
            gen(verifier, images, target="similarity", reference=torch.randn(2, 32)),
        )


def test_the_two_rollout_variants_differ() -> None:
    verifier = _face_vit()
    images = _images(2)
    authors = registry.create("attention", "rollout")(verifier, images)
    abnar = registry.create("attention", "rollout", variant="abnar")(verifier, images)
    assert (authors - abnar).abs().max() > 1e-3


def test_a_constant_map_becomes_zeros_not_nan() -> None:
    out = to_image_maps(torch.full((2, 196), 3.5), (14, 14), (112, 112))
    assert out.shape == (2, 112, 112) and (out == 0).all()
    mixed = minmax(torch.stack([torch.zeros(4, 4), torch.arange(16.0).reshape(4, 4)]))
    assert (mixed[0] == 0).all() and mixed[1].max() == 1 and mixed[1].min() == 0


def test_non_finite_scores_raise_instead_of_giving_nan_maps() -> None:
    scores = torch.rand(1, 196)
    scores[0, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        to_image_maps(scores, (14, 14), (112, 112))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(("name", "options"), GENERATORS, ids=IDS)
def test_maps_on_the_gpu_equal_the_cpu_maps(name: str, options: dict) -> None:
    cpu = _face_vit()
    images = _images(3)
    expected = registry.create("attention", name, **options)(cpu, images)
    gpu = FaceViTVerifier(cpu.config, cpu.model, device="cuda")
    maps = registry.create("attention", name, **options)(gpu, images.cuda())
    assert maps.device.type == "cuda"
    torch.testing.assert_close(maps.cpu(), expected, atol=2e-3, rtol=0)


def test_the_float64_twin_is_made_once_and_again_when_the_weights_change() -> None:
    """float64_twin reuses one copy per verifier while its weights and attributes are
    unchanged, makes a new one after an in-place weight update or a rebound attribute, and
    its maps follow the new weights (issue 19: the copy cost as much as two embeddings)."""
    from xfr_plugins.attention.base import float64_twin

    v = _face_vit()
    twin = float64_twin(v)
    assert next(twin.backbone.parameters()).dtype == torch.float64
    assert next(v.backbone.parameters()).dtype == torch.float32  # the verifier is untouched
    assert float64_twin(v) is twin
    generator = registry.create("attention", "vit-lrp")
    images = _images(2)
    before = generator(v, images)
    with torch.no_grad():  # an optimiser step, in place
        for p in v.backbone.blocks[-1].parameters():
            p.mul_(1.5)
    changed = float64_twin(v)
    assert changed is not twin
    assert torch.equal(next(changed.backbone.blocks[-1].parameters()),
                       next(v.backbone.blocks[-1].parameters()).double())
    assert not torch.equal(generator(v, images), before)
    v.threshold = 0.5  # a rebound attribute
    assert float64_twin(v) is not changed


def test_an_evaluation_cache_key_leaves_the_batch_size_out() -> None:
    """A generator's batch size and workers never change its maps, so xfr evaluate's cache key
    of a generator configuration does not contain them; every other option does."""
    from xfr.evaluation.runner import generator_configuration

    a = generator_configuration(registry.create("attention", "vit-lrp", batch_size=2))
    b = generator_configuration(registry.create("attention", "vit-lrp", batch_size=16,
                                                workers=3))
    c = generator_configuration(registry.create("attention", "vit-lrp", alpha=1.0))
    assert a == b and "batch_size" not in a and "workers" not in a
    assert a != c and "alpha=0.5" in a and "precision='float64'" in a
