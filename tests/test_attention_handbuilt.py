"""Every generator finds the patch a hand-built ViT attends to (issue 4, "Tests that can fail").

The ViT's weights are set by hand so that, in every block and every head, the CLS token's query
meets only one patch's key: the position embedding of patch ``p`` carries a key marker, the CLS
token a query marker, and the qkv weights read queries and keys from those markers only. The
value of patch ``p`` is routed by the output projection into one channel that the identity head
(class 0) reads, so the target depends on that attention. Everything else is small random
noise. Every generator's map must peak in patch ``p``'s 8x8 cell, for every target.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from xfr_plugins.attention.tracing import run_vit
from xfr_plugins.verifiers.face_vit import FaceViTVerifier

from xfr import registry

torch.set_num_threads(1)

KEY, QUERY, ROUTE = 0, 1, 2  # channels of the residual stream used as markers


def hand_built_vit(patch: int, dim: int = 32, depth: int = 3, heads: int = 2,
                   token_embedding: str = "p8s8", seed: int = 0) -> FaceViTVerifier:
    torch.manual_seed(seed)
    verifier = FaceViTVerifier.load(None, patch=token_embedding, dim=dim, depth=depth,
                                    heads=heads, mlp_dim=2 * dim, num_classes=4,
                                    attention_scale="head_dim")
    vit = verifier.backbone
    hd = dim // heads
    with torch.no_grad():
        for p in vit.patch_embed.parameters():
            p.mul_(1e-3)  # the image barely matters: the attention is built in
        vit.pos_embed.normal_(0, 0.1)
        vit.pos_embed[0, :, :3] = 0
        vit.pos_embed[0, 1 + patch, KEY] = 4.0
        vit.cls_token.normal_(0, 0.1)
        vit.cls_token[0, 0, :3] = 0
        vit.cls_token[0, 0, QUERY] = 4.0
        for block in vit.blocks:
            w = block.attn.qkv.weight
            w.normal_(0, 0.02)
            q, k, v = w[:dim], w[dim:2 * dim], w[2 * dim:]
            for h in range(heads):
                q[h * hd] = 0
                q[h * hd, QUERY] = 3.0
                k[h * hd] = 0
                k[h * hd, KEY] = 3.0
                v[h * hd + 1] = 0
                v[h * hd + 1, KEY] = 1.0
            block.attn.proj.weight.normal_(0, 0.02)
            block.attn.proj.bias.zero_()
            for h in range(heads):
                block.attn.proj.weight[ROUTE, h * hd + 1] = 1.0
            block.mlp.fc2.weight.mul_(0.1)
        verifier.model.head.weight.normal_(0, 0.1)
        verifier.model.head.weight[0, ROUTE] = 3.0
    return verifier


GENERATORS = [
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


def test_the_hand_built_vit_really_attends_to_its_patch() -> None:
    verifier = hand_built_vit(patch=37)
    trace = run_vit(verifier, torch.rand(2, 3, 112, 112) * 255)
    for probs in trace.attentions:
        cls_row = probs[:, :, 0]  # (N, H, T)
        assert (cls_row.argmax(-1) == 1 + 37).all()
        assert cls_row[..., 1 + 37].min() > 0.5
    logits = verifier.class_logits(trace.features)
    assert (logits.argmax(-1) == 0).all()  # the head reads the routed channel


@pytest.mark.parametrize("patch", [37, 150])
@pytest.mark.parametrize(("name", "options"), GENERATORS, ids=IDS)
@pytest.mark.parametrize("target", ["logit", "embedding", "similarity"])
def test_every_generator_peaks_at_the_attended_patch(
    patch: int, name: str, options: dict, target: str
) -> None:
    verifier = hand_built_vit(patch)
    images = torch.rand(2, 3, 112, 112, generator=torch.Generator().manual_seed(3)) * 255
    reference = None
    if target == "similarity":  # the reference points along the routed channel
        reference = torch.zeros(2, 32)
        reference[:, ROUTE] = 1.0
    maps = registry.create("attention", name, **options)(verifier, images, target, reference)
    cells = F.avg_pool2d(maps[:, None], 8)[:, 0].flatten(1)  # (N, 196): the 14x14 patch cells
    assert (cells.argmax(-1) == patch).all(), cells.topk(3, dim=-1)
    row, col = divmod(patch, 14)
    peak = maps.flatten(1).argmax(-1)
    assert ((peak // 112) // 8 == row).all() and ((peak % 112) // 8 == col).all()
