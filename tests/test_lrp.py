"""Our LRP (Chefer, Gur & Wolf 2021; docs/method.md, "LRP rules"): each rule against an
autograd re-statement of Chefer et al.'s ``relprop``, and relevance conservation through whole
random ViTs.

Stated tolerances: in float64, relevance totals at every layer equal the starting relevance
(the target score, ``start="score"``) to a relative 1e-6 (the 1e-9 division guards are the only
leak); in float32 to 1e-4. The convolutional stem loses what falls on tokens whose stem features
are all zero (only a bias left to explain them): at most 2 % of the absolute relevance there.
"""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
from authors_reference import guarded_divide, relprop_add, relprop_linear
from input_relevance import conv_relevance, input_relevance
from xfr_plugins.attention.lrp import (
    add_relevance,
    check_alpha,
    linear_alpha_beta,
    linear_zb,
    matmul_relevance,
    readout_relevance,
    safe_divide,
)
from xfr_plugins.attention.relevance import propagate
from xfr_plugins.attention.targets import readout
from xfr_plugins.attention.tracing import run_vit
from xfr_plugins.verifiers.face_vit import FaceViTVerifier
from xfr_plugins.verifiers.timm_vit import TimmViTVerifier

torch.set_num_threads(1)

#: Our guard keeps the denominator's sign, Chefer et al.'s adds +1e-9 whatever the sign: on
#: random signed data the two differ where a denominator is near zero, by < 1e-5 relative.
GUARD = {"rtol": 1e-5, "atol": 1e-9}


# --- Chefer et al.'s relprop, re-stated with autograd (gradprop) as in their layers_ours.py:
# the shared re-statement of tests/authors_reference.py
_chefer_safe_divide = guarded_divide
_chefer_linear = relprop_linear


def _chefer_matmul(a: torch.Tensor, b: torch.Tensor, r: torch.Tensor):
    a = a.detach().requires_grad_(True)
    b = b.detach().requires_grad_(True)
    z = a @ b
    s = _chefer_safe_divide(r, z)
    ga, gb = torch.autograd.grad(z, [a, b], s)
    return (a * ga).detach() / 2, (b * gb).detach() / 2


_chefer_add = relprop_add


@pytest.mark.parametrize("alpha", [1.0, 0.5, 2.0])
def test_linear_alpha_beta_equals_chefer_relprop_and_conserves(alpha: float) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 7, 16, generator=g, dtype=torch.float64)
    w = torch.randn(24, 16, generator=g, dtype=torch.float64)
    r = torch.randn(4, 7, 24, generator=g, dtype=torch.float64)
    ours = linear_alpha_beta(x, w, r, alpha)
    torch.testing.assert_close(ours, _chefer_linear(x, w, r, alpha), **GUARD)
    torch.testing.assert_close(ours.sum(-1), r.sum(-1), **GUARD)


def test_matmul_rule_halves_between_operands_like_chefer() -> None:
    g = torch.Generator().manual_seed(2)
    a = torch.rand(2, 3, 9, 9, generator=g, dtype=torch.float64)  # probabilities
    b = torch.randn(2, 3, 9, 5, generator=g, dtype=torch.float64)  # values
    r = torch.randn(2, 3, 9, 5, generator=g, dtype=torch.float64)
    ra, rb = matmul_relevance(a, b, r)
    ca, cb = _chefer_matmul(a, b, r)
    torch.testing.assert_close(ra, ca, **GUARD)
    torch.testing.assert_close(rb, cb, **GUARD)
    torch.testing.assert_close(ra.sum() + rb.sum(), r.sum(), **GUARD)
    # Away from near-zero products, conservation is exact and each operand gets half.
    b = b.abs() + 0.1
    ra, rb = matmul_relevance(a, b, r)
    torch.testing.assert_close(ra.sum() + rb.sum(), r.sum())
    torch.testing.assert_close(ra.sum(), rb.sum())


def test_residual_rule_matches_chefer_per_image_and_conserves() -> None:
    g = torch.Generator().manual_seed(3)
    a = torch.randn(3, 5, 8, generator=g, dtype=torch.float64)
    b = torch.randn(3, 5, 8, generator=g, dtype=torch.float64)
    r = torch.randn(3, 5, 8, generator=g, dtype=torch.float64)
    ra, rb = add_relevance(a, b, r)
    for i in range(3):  # Chefer et al. ran batch 1: per image, ours is theirs
        ca, cb = _chefer_add(a[i:i + 1], b[i:i + 1], r[i:i + 1])
        torch.testing.assert_close(ra[i:i + 1], ca, **GUARD)
        torch.testing.assert_close(rb[i:i + 1], cb, **GUARD)
    torch.testing.assert_close((ra + rb).flatten(1).sum(-1), r.flatten(1).sum(-1))


def test_residual_rule_broadcasts_a_position_embedding() -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 5, 8, generator=g, dtype=torch.float64)
    pos = torch.randn(1, 5, 8, generator=g, dtype=torch.float64)
    r = torch.randn(2, 5, 8, generator=g, dtype=torch.float64)
    rx, rp = add_relevance(x, pos, r)
    assert rx.shape == rp.shape == r.shape
    torch.testing.assert_close((rx + rp).flatten(1).sum(-1), r.flatten(1).sum(-1))


def test_zb_rule_conserves_and_gives_padding_nothing() -> None:
    g = torch.Generator().manual_seed(5)
    x = torch.rand(2, 6, 12, generator=g, dtype=torch.float64) * 255
    x[:, :, :3] = 0  # padding
    inside = torch.ones(1, 1, 12, dtype=torch.float64)
    inside[..., :3] = 0
    w = torch.randn(10, 12, generator=g, dtype=torch.float64)
    r = torch.randn(2, 6, 10, generator=g, dtype=torch.float64)
    low = torch.zeros(2, 1, 1, dtype=torch.float64)
    high = torch.full((2, 1, 1), 255.0, dtype=torch.float64)
    rin = linear_zb(x, w, r, low * inside, high * inside)
    torch.testing.assert_close(rin.sum(-1), r.sum(-1))
    assert (rin[:, :, :3] == 0).all()


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_conv_rule_equals_the_linear_rule_on_unfolded_patches(alpha: float) -> None:
    g = torch.Generator().manual_seed(6)
    torch.manual_seed(6)
    conv = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1).double()
    # Strictly positive inputs (a ReLU's output minus its zeros): with zeros, an output whose
    # positive weights all meet zero inputs has nothing to pass its relevance to (alpha = 1).
    x = torch.rand(2, 4, 9, 9, generator=g, dtype=torch.float64) + 0.1
    out = conv(x).detach()
    r = torch.randn(out.shape, generator=g, dtype=torch.float64)
    rin = conv_relevance(x, conv, r, alpha=alpha).detach()
    cols = F.unfold(x, 3, padding=1, stride=2).transpose(1, 2)
    ref = _chefer_linear(cols, conv.weight.detach().reshape(6, -1), r.flatten(2).transpose(1, 2),
                         alpha)
    folded = F.fold(ref.transpose(1, 2), (9, 9), 3, padding=1, stride=2)
    torch.testing.assert_close(rin, folded, **GUARD)
    torch.testing.assert_close(rin.flatten(1).sum(-1), r.flatten(1).sum(-1), **GUARD)


def test_readout_rule_keeps_only_alpha_without_negative_contributions() -> None:
    """Rule 4 of docs/method.md: Chefer et al.'s Linear.relprop, which the paper's authors ran,
    gives the positive part alpha of the relevance even when there is no negative part (the
    old rule handed all of it to the positive part and conserved)."""
    e = torch.randn(3, 8, dtype=torch.float64)
    direction = F.normalize(e, dim=-1)  # the embedding along itself: all contributions >= 0
    score = (e * direction).sum(-1)
    for alpha in (1.0, 0.5, 2.0):
        r = readout_relevance(e, direction, score, alpha)
        torch.testing.assert_close(r.sum(-1), alpha * score)
        assert (r >= 0).all()
        # per image: the alpha-beta rule of a linear layer whose single output is the score
        for i in range(3):
            ref = _chefer_linear(e[i : i + 1], direction[i : i + 1], score[i : i + 1, None], alpha)
            torch.testing.assert_close(r[i : i + 1], ref)


def test_readout_rule_equals_chefer_linear_with_mixed_signs() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 16, generator=g, dtype=torch.float64)
    w = torch.randn(1, 16, generator=g, dtype=torch.float64)
    r = torch.tensor([1.0], dtype=torch.float64)
    for alpha in (1.0, 0.5):
        torch.testing.assert_close(readout_relevance(x, w, r, alpha),
                                   _chefer_linear(x, w, r[:, None], alpha))


def test_safe_divide_gives_zero_on_zero_denominators_and_no_nan() -> None:
    a = torch.tensor([1.0, 2.0, 3.0])
    b = torch.tensor([0.0, 2.0, -1e-12])
    out = safe_divide(a, b)
    assert out[0] == 0 and out[1] == pytest.approx(1.0) and torch.isfinite(out).all()


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_alpha_must_be_a_positive_finite_number(bad: float) -> None:
    with pytest.raises(ValueError, match="alpha"):
        check_alpha(bad)
    with pytest.raises(TypeError, match="alpha"):
        check_alpha("one")  # type: ignore[arg-type]


# --- Whole models ---------------------------------------------------------------------------
def _face_vit(patch: str, dtype: torch.dtype = torch.float64, seed: int = 0) -> FaceViTVerifier:
    torch.manual_seed(seed)
    v = FaceViTVerifier.load(None, patch=patch, dim=32, depth=3, heads=2, mlp_dim=64,
                             num_classes=5)
    v.model.to(dtype)
    return v


def _timm_vit(dtype: torch.dtype = torch.float64, **kw) -> TimmViTVerifier:
    torch.manual_seed(0)
    m = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=48, patch_size=8,
                          embed_dim=32, depth=3, num_heads=2, num_classes=6, **kw)
    return TimmViTVerifier(m.to(dtype))


def _images(n: int, size: int, dtype: torch.dtype = torch.float64, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, size, size, generator=g) * 255).to(dtype)


def _check_conservation(verifier, images, target, alpha, rtol, reference=None):
    trace = run_vit(verifier, images)
    r = readout(verifier, trace.features, target, reference)
    res = propagate(verifier.backbone, trace, r, alpha=alpha, start="score")
    score = r.score.detach()
    tol = rtol * score.abs().clamp(min=1.0)
    if alpha == 1.0:
        assert (res.features.sum(-1) - score).abs().le(tol).all()
    # The read-out gives the network only alpha of the relevance when one sign of
    # contributions is missing (the reference rule); from there on every layer conserves.
    score = res.features.sum(-1)
    for i, totals in enumerate(res.block_totals):
        for where, total in totals.items():
            err = (total - score).abs()
            assert err.le(tol).all(), f"block {i} {where}: {total} vs score {score}"
    assert (res.tokens.flatten(1).sum(-1) - score).abs().le(tol).all()
    return trace, res, score, tol


@pytest.mark.parametrize("patch", ["p8s8", "p12s8"])
@pytest.mark.parametrize("alpha", [1.0, 0.5])
@pytest.mark.parametrize("target", ["logit", "embedding", "similarity"])
def test_relevance_is_conserved_from_the_target_score_down_to_the_pixels(
    patch: str, alpha: float, target: str
) -> None:
    v = _face_vit(patch)
    x = _images(2, 112)
    ref = torch.randn(2, 32, dtype=torch.float64) if target == "similarity" else None
    trace, res, score, tol = _check_conservation(v, x, target, alpha, 1e-6, ref)
    inp = input_relevance(v.backbone, trace, res.tokens, alpha)
    assert inp.pixels.shape == x.shape
    assert (inp.total() - score).abs().le(tol).all()
    patches = inp.patches.flatten(1).sum(-1)
    assert (inp.pixels.flatten(1).sum(-1) - patches).abs().le(tol).all()


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_relevance_is_conserved_through_the_conv_stem_up_to_dead_tokens(alpha: float) -> None:
    v = _face_vit("conv")
    x = _images(2, 112)
    trace, res, score, tol = _check_conservation(v, x, "logit", alpha, 1e-6)
    inp = input_relevance(v.backbone, trace, res.tokens, alpha)
    leak = (inp.pixels.flatten(1).sum(-1) - inp.patches.flatten(1).sum(-1)).abs()
    assert leak.le(0.02 * inp.patches.abs().flatten(1).sum(-1)).all()


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"qkv_bias": True, "init_values": 0.1},  # layer-scale, biased qkv (timm's default ViT)
        {"reg_tokens": 2, "no_embed_class": True, "qk_norm": True, "fc_norm": True},
    ],
    ids=["plain", "qkv-bias-layerscale", "registers-qknorm-fcnorm"],
)
@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_relevance_is_conserved_on_timm_vits(options: dict, alpha: float) -> None:
    v = _timm_vit(**options)
    x = _images(2, 48)
    # Register tokens start as exact zeros: the reference code's rule for a tensor used twice
    # (x * sum R_i / x, zero where x == 0) drops the relevance that reaches them.
    rtol = 1e-3 if options.get("reg_tokens") else 1e-6
    trace, res, score, tol = _check_conservation(v, x, "logit", alpha, rtol)
    inp = input_relevance(v.backbone, trace, res.tokens, alpha)
    assert (inp.total() - score).abs().le(tol).all()


def test_relevance_is_conserved_in_float32_within_1e_4() -> None:
    v = _face_vit("p8s8", dtype=torch.float32)
    _check_conservation(v, _images(2, 112, torch.float32), "logit", 1.0, 1e-4)


def test_unit_start_puts_relevance_one_on_the_target() -> None:
    v = _face_vit("p8s8")
    trace = run_vit(v, _images(2, 112))
    r = readout(v, trace.features, "logit")
    res = propagate(v.backbone, trace, r, start="unit")
    torch.testing.assert_close(res.tokens.flatten(1).sum(-1), torch.ones(2, dtype=torch.float64))


def test_relevance_propagation_is_per_image() -> None:
    v = _face_vit("p8s8")
    x = _images(3, 112)
    trace = run_vit(v, x)
    res = propagate(v.backbone, trace, readout(v, trace.features, "logit"), alpha=0.5)
    for i in range(3):
        t1 = run_vit(v, x[i:i + 1])
        r1 = propagate(v.backbone, t1, readout(v, t1.features, "logit"), alpha=0.5)
        torch.testing.assert_close(r1.tokens[0], res.tokens[i])


# --- issue 19: the same relevance, computed faster ------------------------------------------


def _attention_relevances(v, trace, target, *, stop: bool) -> list[torch.Tensor]:
    from xfr_plugins.attention.relevance import attention_relevance

    out: list[torch.Tensor] = [torch.empty(0)] * len(trace.block_inputs)

    def keep(i: int, r_probs: torch.Tensor) -> None:
        out[i] = r_probs.clone()

    r = readout(v, trace.features, target)
    if stop:
        attention_relevance(v.backbone, trace, r, alpha=0.5, start="unit", on_attention=keep)
    else:
        propagate(v.backbone, trace, r, alpha=0.5, start="unit", on_attention=keep)
    return out


def test_kept_activations_give_the_relevance_of_the_recomputed_ones() -> None:
    """run_vit(keep_activations=True) hands propagation the forward's own activations: the
    relevance of every block and of the tokens is that of recomputing them (exactly: the same
    operations on the same inputs)."""
    v = _face_vit("p8s8")
    x = _images(2, 112)
    plain, kept = run_vit(v, x), run_vit(v, x, keep_activations=True)
    assert plain.activations is None and kept.activations is not None
    assert len(kept.activations) == len(kept.block_inputs)
    r_plain = _attention_relevances(v, plain, "logit", stop=False)
    r_kept = _attention_relevances(v, kept, "logit", stop=False)
    for a, b in zip(r_plain, r_kept, strict=True):
        assert torch.equal(a, b)
    res_plain = propagate(v.backbone, plain, readout(v, plain.features, "logit"), alpha=0.5)
    res_kept = propagate(v.backbone, kept, readout(v, kept.features, "logit"), alpha=0.5)
    assert torch.equal(res_plain.tokens, res_kept.tokens)


def test_the_maps_relevance_stops_at_block_0_with_the_same_values() -> None:
    """attention_relevance hands over each block's attention relevance as propagate does and
    computes nothing below block 0's attention; the last block, whose output carries relevance
    on the CLS token alone, is propagated for that token: its attention relevance is zero
    outside the CLS row and equals the full computation there."""
    v = _face_vit("p8s8")
    trace = run_vit(v, _images(2, 112), keep_activations=True)
    full = _attention_relevances(v, trace, "logit", stop=False)
    maps = _attention_relevances(v, trace, "logit", stop=True)
    for a, b in zip(full, maps, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)
    last = maps[-1]
    assert last[:, :, 1:].abs().max() == 0 and last[:, :, 0].abs().max() > 0


def test_the_four_product_alpha_beta_rule_equals_the_eight_product_one() -> None:
    """linear_alpha_beta computes x+ W+ and x- W- from x W and |x| |W|: the same values as the
    rule written term by term (Chefer et al.'s Linear.relprop), to float64 rounding, for any
    alpha, and zero relevance for zero inputs."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 11, 40, generator=g, dtype=torch.float64)
    x[0, 0] = 0.0  # a token with no input
    w = torch.randn(24, 40, generator=g, dtype=torch.float64)
    r = torch.randn(3, 11, 24, generator=g, dtype=torch.float64)
    for alpha in (0.5, 1.0, 2.0):
        ours = linear_alpha_beta(x, w, r, alpha)
        torch.testing.assert_close(ours, _chefer_linear(x, w, r, alpha), rtol=1e-9, atol=1e-12)
        assert ours[0, 0].abs().max() == 0


def test_a_block_propagated_for_the_cls_token_alone_equals_the_full_block() -> None:
    """block_relevance(cls_only=True) on relevance that is zero outside token 0 gives the full
    computation's attention relevance and input relevance (the other tokens' terms are exact
    zeros; sums may round in another order)."""
    from xfr_plugins.attention.relevance import block_relevance

    v = _face_vit("p8s8")
    trace = run_vit(v, _images(2, 112), keep_activations=True)
    assert trace.activations is not None
    block, x, acts = v.backbone.blocks[-1], trace.block_inputs[-1], trace.activations[-1]
    g = torch.Generator().manual_seed(7)
    r = torch.zeros_like(trace.output)
    r[:, 0] = torch.randn(r.shape[0], r.shape[-1], generator=g, dtype=r.dtype)
    seen: dict[bool, torch.Tensor] = {}
    out = {}
    for cls_only in (False, True):
        def keep(r_probs: torch.Tensor, cls_only: bool = cls_only) -> None:
            seen[cls_only] = r_probs.clone()

        out[cls_only], _ = block_relevance(block, x, r, 0.5, keep, acts=acts, cls_only=cls_only)
    torch.testing.assert_close(seen[True], seen[False], rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(out[True], out[False], rtol=1e-12, atol=1e-15)
    assert seen[True].shape == acts.probs.shape
