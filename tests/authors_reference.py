"""An independent re-statement, for tests, of the attention maps as the paper's authors compute
them (docs/method.md, "Attention generators", "LRP rules", "Rollout").

It follows the structure of the reference code rather than xfr's: one image at a time, every
layer's relevance rule written as "Z = layer(X); S = R / Z (guarded); C = dZ/dX applied to S
(by autograd); R_X = X * C", the attention relevance of each block kept after the halving of the
``A @ V`` product, and the maps rolled out as ``(A_{L-1} + I) ... (A_0 + I)`` from block 0.
xfr's own implementation (closed forms, batched, no autograd for No-Grad ViT-LRP) is checked
against it in float64.

Works on a timm ``VisionTransformer`` with a linear identity head (the authors' model has a
``Linear`` head and no qkv bias), pre-norm blocks, no LayerScale, CLS token pooling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def guarded_divide(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The reference code's division guard."""
    den = b.clamp(min=1e-9) + b.clamp(max=1e-9)
    den = den + den.eq(0).to(den.dtype) * 1e-9
    return a / den * b.ne(0).to(b.dtype)


def _gradprop(z: torch.Tensor, xs: list[torch.Tensor], s: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(z, xs, s, retain_graph=True))


def relprop_linear(x: torch.Tensor, weight: torch.Tensor, r: torch.Tensor,
                   alpha: float) -> torch.Tensor:
    beta = alpha - 1
    pw, nw = weight.clamp(min=0), weight.clamp(max=0)
    px = x.clamp(min=0).detach().requires_grad_(True)
    nx = x.clamp(max=0).detach().requires_grad_(True)

    def share(w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
        z1, z2 = F.linear(px, w1), F.linear(nx, w2)
        s = guarded_divide(r, z1 + z2)
        c1 = px * _gradprop(z1, [px], s)[0]
        c2 = nx * _gradprop(z2, [nx], s)[0]
        return c1 + c2

    return (alpha * share(pw, nw) - beta * share(nw, pw)).detach()


def relprop_add(a: torch.Tensor, b: torch.Tensor,
                r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a = a.detach().requires_grad_(True)
    b = b.detach().requires_grad_(True)
    z = a + b
    s = guarded_divide(r, z)
    ca, cb = _gradprop(z, [a, b], s)
    ra, rb = (a * ca).detach(), (b * cb).detach()
    sa, sb = ra.sum(), rb.sum()
    fa = guarded_divide(sa.abs(), sa.abs() + sb.abs()) * r.sum()
    fb = guarded_divide(sb.abs(), sa.abs() + sb.abs()) * r.sum()
    return ra * guarded_divide(fa, ra.sum()), rb * guarded_divide(fb, rb.sum())


def relprop_clone(x: torch.Tensor, r1: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
    return x.detach() * (guarded_divide(r1, x.detach()) + guarded_divide(r2, x.detach()))


def relprop_einsum(eq: str, a: torch.Tensor, b: torch.Tensor,
                   r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a = a.detach().requires_grad_(True)
    b = b.detach().requires_grad_(True)
    z = torch.einsum(eq, a, b)
    s = guarded_divide(r, z)
    ca, cb = _gradprop(z, [a, b], s)
    return (a * ca).detach(), (b * cb).detach()


def rollout_with_identity(cams: list[torch.Tensor]) -> torch.Tensor:
    """CLS row over the patch tokens of ``(A_{L-1} + I) ... (A_0 + I)``; cams ``(T, T)``."""
    eye = torch.eye(cams[0].shape[-1], dtype=cams[0].dtype)
    joint = cams[0] + eye
    for cam in cams[1:]:
        joint = (cam + eye) @ joint
    return joint[0, 1:]


def authors_maps(model: torch.nn.Module, pixels: torch.Tensor, alpha: float = 0.5,
                 method: str = "nograd") -> torch.Tensor:
    """CLS-row patch scores ``(T - 1,)`` of one preprocessed image ``(1, 3, H, W)``.

    ``method``: ``"nograd"`` (No-Grad ViT-LRP), ``"vit-lrp"`` (transformer attribution) or
    ``"rollout"`` (the authors' rollout with 90 % discarded).
    """
    blocks = list(model.blocks)
    x = model.norm_pre(model._pos_embed(model.patch_embed(pixels)))
    saved = []
    attns = []
    for blk in blocks:
        attn = blk.attn
        x_in = x
        h1 = blk.norm1(x_in)
        b, t, c = h1.shape
        qkv = attn.qkv(h1).reshape(b, t, 3, attn.num_heads, c // attn.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        probs = torch.softmax(torch.einsum("bhid,bhjd->bhij", q, k) * attn.scale, dim=-1)
        attns.append(probs)
        ctx = torch.einsum("bhij,bhjd->bhid", probs, v).transpose(1, 2).reshape(b, t, c)
        out = attn.proj(ctx)
        x_mid = x_in + out
        h2 = blk.norm2(x_mid)
        g = blk.mlp.act(blk.mlp.fc1(h2))
        m = blk.mlp.fc2(g)
        x = x_mid + m
        saved.append(dict(x_in=x_in, h1=h1, q=q, k=k, v=v, probs=probs, ctx=ctx, out=out,
                          x_mid=x_mid, h2=h2, g=g, m=m))
    emb = model.norm(x)[:, 0]
    logits = model.head(emb)
    index = int(logits.argmax(dim=-1))
    one_hot = torch.zeros_like(logits)
    one_hot[0, index] = 1.0
    grads = torch.autograd.grad((logits * one_hot).sum(), attns, retain_graph=True)

    if method == "rollout":
        cams = []
        for probs in attns:
            fused = probs.detach()[0].mean(dim=0)
            flat = fused.reshape(-1)
            low = flat.topk(int(flat.numel() * 0.9), largest=False).indices
            low = low[low != 0]
            flat[low] = 0
            cams.append(fused)
        return rollout_with_identity(cams)

    r_emb = relprop_linear(emb.detach(), model.head.weight, one_hot, alpha)
    normed = model.norm(x).detach()
    r = torch.zeros_like(x.detach())
    # the CLS selection (index_select): x * (R / x), guarded
    r[:, 0] = normed[:, 0] * guarded_divide(r_emb, normed[:, 0])
    attn_cams: list[torch.Tensor] = [torch.empty(0)] * len(blocks)
    for i in range(len(blocks) - 1, -1, -1):
        blk, a = blocks[i], saved[i]
        heads = blk.attn.num_heads
        r1, r2 = relprop_add(a["x_mid"], a["m"], r)
        r2 = relprop_linear(a["g"].detach(), blk.mlp.fc2.weight, r2, alpha)
        r2 = relprop_linear(a["h2"].detach(), blk.mlp.fc1.weight, r2, alpha)
        r = relprop_clone(a["x_mid"], r1, r2)
        r1, r2 = relprop_add(a["x_in"], a["out"], r)
        r2 = relprop_linear(a["ctx"].detach(), blk.attn.proj.weight, r2, alpha)
        bsz, t, c = r2.shape
        r2 = r2.reshape(bsz, t, heads, c // heads).transpose(1, 2)
        cam_attn, cam_v = relprop_einsum("bhij,bhjd->bhid", a["probs"], a["v"], r2)
        cam_attn, cam_v = cam_attn / 2, cam_v / 2
        attn_cams[i] = cam_attn
        cam_q, cam_k = relprop_einsum("bhid,bhjd->bhij", a["q"], a["k"], cam_attn)
        cam_q, cam_k = cam_q / 2, cam_k / 2
        cam_qkv = torch.stack([cam_q, cam_k, cam_v])  # (3, b, h, t, d)
        cam_qkv = cam_qkv.permute(1, 3, 0, 2, 4).reshape(bsz, t, 3 * c)
        r2 = relprop_linear(a["h1"].detach(), blk.attn.qkv.weight, cam_qkv, alpha)
        r = relprop_clone(a["x_in"], r1, r2)

    cams = []
    for cam, grad in zip(attn_cams, grads, strict=True):
        cam = cam[0]
        if method == "vit-lrp":
            cam = grad[0].detach() * cam
        cams.append(cam.clamp(min=0).mean(dim=0))
    return rollout_with_identity(cams)


def authors_image_map(scores: torch.Tensor, grid: int, size: int) -> torch.Tensor:
    """Grid scores -> bilinear upsampling -> min-max normalisation, as the authors show them."""
    up = F.interpolate(scores.reshape(1, 1, grid, grid), size=(size, size), mode="bilinear",
                       align_corners=False)[0, 0]
    return (up - up.min()) / (up.max() - up.min())
