"""Offline loaders of issue 4: (a) the public Face Transformer checkpoints by their parameter
names, (b) any timm ``VisionTransformer`` as the ``timm-vit`` verifier.

(a) is tested against a re-statement of the Face Transformer forward (Zhong & Deng's
``vit_face.py``: einops patterns written out as reshapes), randomly initialised and saved under
exactly the checkpoint's parameter names: after loading, the face-vit model gives the same
embeddings and CosFace logits.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn
from xfr_plugins.attention.tracing import run_vit
from xfr_plugins.verifiers.face_transformer_checkpoint import (
    convert_state_dict,
    infer_config,
    load_face_transformer,
)
from xfr_plugins.verifiers.timm_vit import TimmViTVerifier

from xfr import registry

torch.set_num_threads(1)


# --- The Face Transformer, as in its authors' code ------------------------------------------
class Residual(nn.Module):
    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x) + x


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden_dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden_dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FTAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float = 0.0) -> None:
        super().__init__()
        inner_dim = dim_head * heads
        self.heads = heads
        self.scale = dim ** -0.5  # dim, not dim_head: as in the public checkpoints
        self.to_qkv = nn.Linear(dim, inner_dim * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner_dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        h = self.heads
        # q, k, v = map(lambda t: rearrange(t, 'b n (h d) -> b h n d', h=h), qkv)
        q, k, v = (t.reshape(b, n, h, -1).transpose(1, 2) for t in self.to_qkv(x).chunk(3, -1))
        dots = torch.einsum("bhid,bhjd->bhij", q, k) * self.scale
        attn = dots.softmax(dim=-1)
        out = torch.einsum("bhij,bhjd->bhid", attn, v)
        out = out.transpose(1, 2).reshape(b, n, -1)  # rearrange 'b h n d -> b n (h d)'
        return self.to_out(out)


class Transformer(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([
            nn.ModuleList([
                Residual(PreNorm(dim, FTAttention(dim, heads, dim_head))),
                Residual(PreNorm(dim, FeedForward(dim, mlp_dim))),
            ])
            for _ in range(depth)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attn, ff in self.layers:
            x = ff(attn(x))
        return x


class CosFace(nn.Module):
    def __init__(self, in_features: int, out_features: int, s: float = 64.0,
                 m: float = 0.35) -> None:
        super().__init__()
        self.s, self.m = s, m
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:  # no label: the plain scaled cosine
        return self.s * F.linear(F.normalize(emb), F.normalize(self.weight))


class FaceTransformer(nn.Module):
    """``ViT_face`` (P8S8, ``overlap=False``) and ``ViTs_face`` (P12S8, ``overlap=True``)."""

    def __init__(self, *, num_class: int, dim: int, depth: int, heads: int, mlp_dim: int,
                 dim_head: int, overlap: bool, image_size: int = 112) -> None:
        super().__init__()
        num_patches = (image_size // 8) ** 2
        patch_dim = 3 * (12 if overlap else 8) ** 2
        self.overlap = overlap
        self.pos_embedding = nn.Parameter(torch.randn(1, num_patches + 1, dim))
        self.patch_to_embedding = nn.Linear(patch_dim, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.transformer = Transformer(dim, depth, heads, dim_head, mlp_dim)
        self.mlp_head = nn.Sequential(nn.LayerNorm(dim))
        self.loss = CosFace(dim, num_class)
        self.soft_split = nn.Unfold(kernel_size=12, stride=8, padding=4)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if self.overlap:
            x = self.soft_split(img).transpose(1, 2)
        else:  # rearrange(img, 'b c (h p1) (w p2) -> b (h w) (p1 p2 c)', p1=8, p2=8)
            b, c, hh, ww = img.shape
            x = img.reshape(b, c, hh // 8, 8, ww // 8, 8).permute(0, 2, 4, 3, 5, 1)
            x = x.reshape(b, (hh // 8) * (ww // 8), 64 * c)
        x = self.patch_to_embedding(x)
        b, n, _ = x.shape
        x = torch.cat((self.cls_token.expand(b, -1, -1), x), dim=1)
        x = x + self.pos_embedding[:, :(n + 1)]
        x = self.transformer(x)
        return self.mlp_head(x[:, 0])


def _reference(overlap: bool, dim: int = 64, heads: int = 4, dim_head: int = 16,
               num_class: int = 10) -> FaceTransformer:
    torch.manual_seed(0)
    model = FaceTransformer(num_class=num_class, dim=dim, depth=2, heads=heads, mlp_dim=96,
                            dim_head=dim_head, overlap=overlap).eval()
    with torch.no_grad():  # LayerNorms away from identity, so that their mapping matters
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    return model


def _images(n: int = 3) -> torch.Tensor:
    return torch.rand(n, 3, 112, 112, generator=torch.Generator().manual_seed(5)) * 255


@pytest.mark.parametrize(("overlap", "patch"), [(False, "p8s8"), (True, "p12s8")])
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_face_transformer_checkpoint_loads_to_identical_outputs(
    tmp_path: Path, overlap: bool, patch: str, suffix: str
) -> None:
    ref = _reference(overlap)
    path = tmp_path / f"Backbone_VIT{suffix}"
    state = {k: v.contiguous() for k, v in ref.state_dict().items()}
    if suffix == ".pth":
        torch.save(state, path)
    else:
        from safetensors.torch import save_file

        save_file(state, str(path))
    verifier = load_face_transformer(path, heads=4, threshold=1.2)
    cfg = verifier.config
    assert (cfg.patch, cfg.dim, cfg.depth, cfg.heads, cfg.mlp_dim, cfg.num_classes) == (
        patch, 64, 2, 4, 96, 10)
    assert cfg.attention_scale == "dim" and cfg.input_norm == "raw"
    assert verifier.threshold == 1.2
    assert cfg.provenance["source"] == str(path)
    images = _images()
    with torch.no_grad():
        expected = ref(images)
        got = verifier.model(images)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(verifier.class_logits(got), ref.loss(expected),
                                   atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(verifier.embed(images), F.normalize(expected, dim=-1),
                               atol=1e-5, rtol=1e-5)


def test_a_loaded_face_transformer_gets_attention_maps() -> None:
    verifier = load_face_transformer(_reference(False).state_dict(), dim_head=16)
    maps = registry.create("attention", "vit-lrp", alpha=0.5)(verifier, _images(2))
    assert maps.shape == (2, 112, 112) and torch.isfinite(maps).all()


def test_the_head_count_defaults_to_the_authors_64_wide_heads() -> None:
    ref = FaceTransformer(num_class=3, dim=512, depth=1, heads=8, mlp_dim=32, dim_head=64,
                          overlap=True)
    cfg = infer_config(ref.state_dict())
    assert (cfg.heads, cfg.dim, cfg.patch, cfg.image_size) == (8, 512, "p12s8", 112)


def test_dataparallel_prefix_and_headless_loading() -> None:
    ref = _reference(False)
    state = {f"module.{k}": v for k, v in ref.state_dict().items()}
    verifier = load_face_transformer(state, heads=4, with_head=False)
    assert verifier.model.head is None and verifier.config.num_classes == 0
    with torch.no_grad():
        torch.testing.assert_close(verifier.model(_images(1)), ref(_images(1)),
                                   atol=1e-4, rtol=1e-4)


def test_checkpoint_problems_are_named() -> None:
    state = _reference(False).state_dict()
    with pytest.raises(ValueError, match="unknown Face Transformer parameters"):
        convert_state_dict({**state, "extra.weight": torch.zeros(1)})
    missing = {k: v for k, v in state.items() if "net.3.bias" not in k}
    with pytest.raises(ValueError, match="missing"):
        load_face_transformer(missing, heads=4)
    with pytest.raises(ValueError, match="no 'cls_token'"):
        infer_config({k: v for k, v in state.items() if k != "cls_token"})
    with pytest.raises(FileNotFoundError):
        load_face_transformer("/nonexistent/Backbone.pth")


# --- timm ------------------------------------------------------------------------------------
def _timm_model(**kw) -> nn.Module:
    torch.manual_seed(0)
    options = dict(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3)
    options.update(kw)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, **options).eval()


def _timm_embedding(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    cfg = model.pretrained_cfg
    mean = torch.tensor(cfg["mean"])[:, None, None]
    std = torch.tensor(cfg["std"])[:, None, None]
    with torch.no_grad():
        x = model.forward_features((images / 255 - mean) / std)
        return F.normalize(model.forward_head(x, pre_logits=True), dim=-1)


@pytest.mark.parametrize(
    "options",
    [{}, {"qkv_bias": True, "init_values": 0.1, "num_classes": 0}, {"fc_norm": True}],
    ids=["default", "layerscale-headless", "fc-norm"],
)
def test_wrapping_a_timm_vit_keeps_its_embeddings(options: dict) -> None:
    model = _timm_model(**options)
    images = torch.rand(4, 3, 32, 32) * 255
    before = _timm_embedding(model, images)
    verifier = TimmViTVerifier(model)
    torch.testing.assert_close(verifier.embed(images), before, atol=1e-6, rtol=1e-5)
    # the attention generators' explicit forward reaches the same embedding
    traced = F.normalize(run_vit(verifier, images).features, dim=-1)
    torch.testing.assert_close(traced, before, atol=1e-6, rtol=1e-5)
    assert verifier.grid_size == (4, 4) and verifier.input_size == 32
    d = verifier.distance(verifier.embed(images[:2]), verifier.embed(images[2:]))
    assert d.shape == (2,) and (d >= 0).all() and (d <= 4).all()
    assert (verifier.class_logits(torch.zeros(1, 48)) is None) == (model.num_classes == 0)


def test_timm_vit_from_the_registry_by_name_and_from_a_weights_file(tmp_path: Path) -> None:
    by_name = registry.create("verifier", "timm-vit:vit_tiny_patch16_224", img_size=32,
                              patch_size=8, embed_dim=48, depth=2, num_heads=3)
    assert by_name.name == "timm-vit"
    model = _timm_model()
    from safetensors.torch import save_file

    path = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    loaded = registry.create("verifier", f"timm-vit:{path}", model="vit_tiny_patch16_224",
                             img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3)
    images = torch.rand(2, 3, 32, 32) * 255
    torch.testing.assert_close(loaded.embed(images), _timm_embedding(model, images))


def test_timm_vit_refuses_what_it_cannot_explain_or_would_download(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="never downloads"):
        TimmViTVerifier.load("vit_tiny_patch16_224", pretrained=True)
    with pytest.raises(ValueError, match="global_pool='token'"):
        TimmViTVerifier(_timm_model(global_pool="avg"))
    with pytest.raises(TypeError, match="VisionTransformer"):
        TimmViTVerifier(nn.Linear(2, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="neither a file nor a timm model"):
        TimmViTVerifier.load("no_such_model_name")
    path = tmp_path / "other.pth"
    torch.save(_timm_model(embed_dim=24).state_dict(), path)
    with pytest.raises(ValueError, match="does not fit"):
        TimmViTVerifier.load(path, model="vit_tiny_patch16_224", img_size=32, patch_size=8,
                             embed_dim=48, depth=2, num_heads=3)
