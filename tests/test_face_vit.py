"""The ``face-vit`` verifier (docs/method.md, "The face ViT"): the Face Transformer shapes, the
token embeddings, the embedding and distance, the CosFace head and xfr's own format.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from xfr_plugins.attention.tracing import run_vit
from xfr_plugins.verifiers.face_vit import FaceViTConfig, FaceViTVerifier, count_tokens

from xfr import registry

torch.set_num_threads(1)


def _face_transformer_parameters(patch_features: int, dim: int = 512, depth: int = 20,
                                 mlp: int = 2048, tokens: int = 197) -> int:
    """Parameter count of Zhong & Deng's backbone (no head), from its layer list."""
    block = (2 * 2 * dim  # two LayerNorms
             + dim * 3 * dim  # to_qkv, no bias
             + dim * dim + dim  # to_out
             + dim * mlp + mlp + mlp * dim + dim)  # net.0, net.3
    return (patch_features * dim + dim  # patch_to_embedding
            + dim + tokens * dim  # cls_token, pos_embedding
            + depth * block + 2 * dim)  # blocks, mlp_head LayerNorm


@pytest.mark.parametrize(("patch", "features"), [("p8s8", 192), ("p12s8", 432)])
def test_the_paper_shapes_build_with_197_tokens_at_112(patch: str, features: int) -> None:
    torch.manual_seed(0)
    verifier = FaceViTVerifier.load(None, patch=patch)  # dim 512, depth 20, 8 heads
    cfg = verifier.config
    assert (cfg.dim, cfg.depth, cfg.heads, cfg.mlp_dim) == (512, 20, 8, 2048)
    assert verifier.num_parameters() == _face_transformer_parameters(features)
    assert count_tokens(cfg) == 197 and verifier.grid_size == (14, 14)
    vit = verifier.backbone
    assert all(b.attn.scale == pytest.approx(512 ** -0.5) for b in vit.blocks)
    assert all(b.attn.qkv.bias is None for b in vit.blocks)
    with torch.no_grad():
        tokens = vit._pos_embed(vit.patch_embed(torch.rand(2, 3, 112, 112) * 255))
    assert tokens.shape == (2, 197, 512)


@pytest.mark.parametrize("patch", ["p8s8", "p12s8", "conv"])
def test_every_token_embedding_gives_a_14x14_grid_through_the_blocks(patch: str) -> None:
    verifier = FaceViTVerifier.load(None, patch=patch, dim=64, depth=1, heads=2, mlp_dim=64)
    trace = run_vit(verifier, torch.rand(1, 3, 112, 112) * 255)
    assert trace.grid == (14, 14)
    assert trace.output.shape == (1, 197, 64)
    assert trace.attentions[0].shape == (1, 2, 197, 197)


def test_attention_scale_is_selectable() -> None:
    v = FaceViTVerifier.load(None, dim=64, depth=1, heads=4, mlp_dim=64,
                             attention_scale="head_dim")
    assert v.backbone.blocks[0].attn.scale == pytest.approx(16 ** -0.5)


def _small(**kw) -> FaceViTVerifier:
    torch.manual_seed(0)
    options = dict(dim=32, depth=2, heads=2, mlp_dim=64)
    options.update(kw)
    return FaceViTVerifier.load(None, **options)


def _images(n: int = 3) -> torch.Tensor:
    return torch.rand(n, 3, 112, 112, generator=torch.Generator().manual_seed(7)) * 255


def test_the_embedding_is_the_normalised_cls_token_after_the_final_layernorm() -> None:
    v = _small()
    images = _images()
    trace = run_vit(v, images)  # the explicit forward, block by block
    torch.testing.assert_close(v.embed(images), F.normalize(trace.features, dim=-1),
                               atol=1e-6, rtol=1e-5)
    assert torch.allclose(v.embed(images).norm(dim=-1), torch.ones(3))


def test_flip_embedding_adds_the_mirrored_image() -> None:
    v = _small(flip=True)
    images = _images()
    with torch.no_grad():
        e = F.normalize(v.model(images), dim=-1) + F.normalize(v.model(images.flip(-1)), dim=-1)
    torch.testing.assert_close(v.embed(images), F.normalize(e, dim=-1))


def test_distance_is_the_squared_l2_of_normalised_embeddings() -> None:
    v = _small()
    e = v.embed(_images())
    d = v.distance(e[:2], e[1:])
    torch.testing.assert_close(d, (e[:2] - e[1:]).pow(2).sum(-1))
    assert (d >= 0).all() and (d <= 4).all()
    assert v.distance(e, e).abs().max() < 1e-6


def test_cosface_head_gives_scaled_cosines_and_subtracts_the_margin_on_labels() -> None:
    v = _small(num_classes=5, cosface_s=30.0, cosface_m=0.2)
    with torch.no_grad():
        f = v.model(_images())
        cos = F.linear(F.normalize(f), F.normalize(v.model.head.weight))
        torch.testing.assert_close(v.class_logits(f), 30.0 * cos)
        labels = torch.tensor([0, 3, 4])
        margin = v.model.head(f, labels)
    expected = 30.0 * (cos - 0.2 * F.one_hot(labels, 5))
    torch.testing.assert_close(margin, expected)
    assert _small().class_logits(f) is None


def test_centered_input_normalisation() -> None:
    v = _small(input_norm="centered")
    x = _images(1)
    torch.testing.assert_close(v.preprocess(x), (x - 127.5) / 128.0)


def test_save_and_load_round_trip_keeps_embeddings_threshold_and_provenance(
    tmp_path: Path,
) -> None:
    v = _small(patch="conv", num_classes=4, threshold=1.23,
               provenance={"trained_on": "LFW folds 1-8"})
    v.save(tmp_path / "model")
    loaded = registry.create("verifier", f"face-vit:{tmp_path / 'model'}")
    assert loaded.threshold == pytest.approx(1.23)
    assert loaded.config.provenance == {"trained_on": "LFW folds 1-8"}
    images = _images()
    torch.testing.assert_close(loaded.embed(images), v.embed(images))


@pytest.mark.parametrize(
    "images",
    [torch.rand(1, 3, 96, 96), torch.rand(3, 112, 112), torch.full((1, 3, 112, 112), torch.nan)],
    ids=["wrong-size", "no-batch", "nan"],
)
def test_bad_images_raise_value_errors(images: torch.Tensor) -> None:
    with pytest.raises(ValueError):
        _small().embed(images)


@pytest.mark.parametrize(
    "options",
    [{"patch": "p16"}, {"dim": 30, "heads": 4}, {"attention_scale": "sqrt"}, {"colour": 1}],
)
def test_bad_configurations_raise_value_errors(options: dict) -> None:
    with pytest.raises(ValueError):
        FaceViTVerifier.load(None, **{"depth": 1, **options})


def test_config_round_trips_through_a_dict() -> None:
    cfg = FaceViTConfig(patch="p12s8", dim=64, heads=4)
    from dataclasses import asdict

    assert FaceViTConfig.from_dict(asdict(cfg)) == cfg
