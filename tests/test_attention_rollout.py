"""Raw attention and rollout against a straightforward re-computation (docs/method.md,
"Rollout": the authors' rule is the mean over heads, the lowest 90 % discarded except the
CLS->CLS entry, product of (A + I) without row normalisation from block 0; Abnar & Zuidema:
row-normalised (A + I) / 2).

The attention probabilities are taken from timm's own (non-fused) attention code through a
temporary forward hook on its attention dropout, so our explicit forward is checked against
timm, and the products are full ``T x T`` matrix products.
"""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
from xfr_plugins.attention.maps import to_image_maps
from xfr_plugins.attention.rollout import cls_rollout, discard_lowest
from xfr_plugins.attention.tracing import run_vit
from xfr_plugins.verifiers.face_vit import FaceViTVerifier
from xfr_plugins.verifiers.timm_vit import TimmViTVerifier

from xfr import registry

torch.set_num_threads(1)


def _face_vit() -> FaceViTVerifier:
    """float64, so that min-max normalisation cannot magnify rounding differences."""
    torch.manual_seed(0)
    v = FaceViTVerifier.load(None, dim=32, depth=3, heads=2, mlp_dim=64)
    v.model.double()
    return v


def _images(n: int = 2, size: int = 112) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(4)) * 255


def _timm_attention(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Each block's probabilities from timm's own non-fused attention code."""
    probs: list[torch.Tensor] = []
    handles = []
    for block in model.blocks:
        block.attn.fused_attn = False
        handles.append(block.attn.attn_drop.register_forward_hook(
            lambda _m, inp, _out: probs.append(inp[0].detach())))
    try:
        with torch.no_grad():
            model.forward_features(x)
    finally:
        for h in handles:
            h.remove()
        for block in model.blocks:
            block.attn.fused_attn = True
    return probs


def _face_vit_attention(backbone: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Face-vit's ScaledAttention always runs the fused kernel: the probabilities are written
    out from each block's weights, while the residual stream goes through timm's own blocks."""
    probs = []
    with torch.no_grad():
        h = backbone.norm_pre(backbone._pos_embed(backbone.patch_embed(x)))
        for block in backbone.blocks:
            attn = block.attn
            n, t, c = h.shape
            qkv = attn.qkv(block.norm1(h)).reshape(n, t, 3, attn.num_heads, -1)
            q, k = qkv[:, :, 0].transpose(1, 2), qkv[:, :, 1].transpose(1, 2)
            probs.append(torch.softmax(q @ k.transpose(-2, -1) * attn.scale, dim=-1))
            h = block(h)
    return probs


def test_traced_attention_equals_timms_own_attention() -> None:
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64,
                              embed_dim=48, depth=2, num_heads=3, qkv_bias=True,
                              init_values=0.1)
    v = TimmViTVerifier(model)
    images = _images(2, 64)
    ours = run_vit(v, images).attentions
    theirs = _timm_attention(model, v.preprocess(images))
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def _reference_rollout(probs: list[torch.Tensor], variant: str,
                       discard_cls: bool = False) -> torch.Tensor:
    t = probs[0].shape[-1]
    eye = torch.eye(t, dtype=probs[0].dtype)
    joint = None
    for p in probs:  # block 0 first; later blocks multiply from the left
        a = p.mean(dim=1)
        if variant == "authors":
            rows = []
            for flat in a.reshape(a.shape[0], -1).clone():  # one image at a time
                drop = flat.topk(int(flat.shape[0] * 0.9), largest=False).indices
                if not discard_cls:
                    drop = drop[drop != 0]  # the authors never zero the CLS->CLS entry
                flat[drop] = 0.0
                rows.append(flat)
            m = torch.stack(rows).reshape(a.shape) + eye
        else:
            m = (a + eye) / 2
            m = m / m.sum(-1, keepdim=True)
        joint = m if joint is None else m @ joint
    return joint[:, 0, 1:]


@pytest.mark.parametrize(("variant", "discard_cls"),
                         [("authors", False), ("authors", True), ("abnar", False)])
def test_rollout_equals_the_full_matrix_product(variant: str, discard_cls: bool) -> None:
    v = _face_vit()
    images = _images().double()
    probs = _face_vit_attention(v.backbone, images)
    expected = to_image_maps(_reference_rollout(probs, variant, discard_cls), (14, 14),
                             (112, 112))
    got = registry.create("attention", "rollout", variant=variant,
                          discard_cls=discard_cls)(v, images)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_rollout_never_discards_the_cls_to_cls_entry_by_default() -> None:
    """Rule 2 of docs/method.md: the CLS->CLS entry survives even when it is the lowest."""
    a = torch.rand(2, 10, 10) + 0.5
    a[:, 0, 0] = 0.01  # the lowest entry of each matrix
    kept = discard_lowest(a, 0.9)
    assert (kept[:, 0, 0] == 0.01).all()
    assert ((kept != 0).sum(dim=(1, 2)) == 100 - 90 + 1).all()  # one entry fewer discarded
    zeroed = discard_lowest(a, 0.9, keep_cls=False)
    assert (zeroed[:, 0, 0] == 0).all()
    assert ((zeroed != 0).sum(dim=(1, 2)) == 10).all()


def test_raw_attention_is_the_last_blocks_head_mean_cls_row() -> None:
    v = _face_vit()
    images = _images().double()
    last = _face_vit_attention(v.backbone, images)[-1].mean(dim=1)[:, 0, 1:]
    expected = to_image_maps(last, (14, 14), (112, 112))
    torch.testing.assert_close(registry.create("attention", "attention")(v, images), expected)


def test_discard_lowest_keeps_exactly_the_top_tenth() -> None:
    a = torch.rand(3, 197, 197)
    a[:, 0, 0] = 1.0  # among the kept entries: the CLS exemption plays no part here
    kept = discard_lowest(a, 0.9)
    n = 197 * 197
    assert ((kept != 0).sum(dim=(1, 2)) == n - int(0.9 * n)).all()
    threshold = kept.flatten(1).masked_fill(kept.flatten(1) == 0, 2).min(1).values
    dropped_max = a.flatten(1).masked_fill(kept.flatten(1) != 0, -1).max(1).values
    assert (dropped_max <= threshold).all()


def test_cls_rollout_row_equals_the_product_row() -> None:
    mats = [torch.rand(2, 6, 6) for _ in range(4)]
    joint = torch.eye(6).expand(2, 6, 6)
    for m in mats:
        joint = (m + torch.eye(6)) @ joint
    torch.testing.assert_close(cls_rollout(mats), joint[:, 0])


def test_maps_are_bilinear_upsamplings_of_the_token_grid() -> None:
    scores = torch.rand(2, 196)
    up = F.interpolate(scores.reshape(2, 1, 14, 14), size=(112, 112), mode="bilinear",
                       align_corners=False)[:, 0]
    lo = up.flatten(1).min(1).values[:, None, None]
    hi = up.flatten(1).max(1).values[:, None, None]
    torch.testing.assert_close(to_image_maps(scores, (14, 14), (112, 112)), (up - lo) / (hi - lo))
