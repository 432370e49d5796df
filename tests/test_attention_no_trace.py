"""Generators leave the model exactly as found (issue 4): no hooks, no gradients, no
``requires_grad`` or train/eval change, no retained graph, and repeated calls do not grow memory
(a known failure of peer tools that register hooks and keep graphs).
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import pytest
import torch
from torch import nn
from xfr_plugins.verifiers.face_vit import FaceViTVerifier

from xfr import registry

torch.set_num_threads(1)

NAMES = ["attention", "rollout", "vit-lrp", "nograd-lrp", "grad-rollout"]


def _verifier(patch: str = "p8s8") -> FaceViTVerifier:
    torch.manual_seed(0)
    return FaceViTVerifier.load(None, patch=patch, dim=32, depth=2, heads=2, mlp_dim=64,
                                num_classes=5)


def _images(n: int = 2) -> torch.Tensor:
    return torch.rand(n, 3, 112, 112, generator=torch.Generator().manual_seed(1)) * 255


def _snapshot(model: nn.Module) -> dict[str, Any]:
    return {
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [p.grad for p in model.parameters()],
        "hooks": [
            len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
            + len(getattr(m, "_backward_pre_hooks", {}))
            for m in model.modules()
        ],
        "tensor_hooks": [p._backward_hooks for p in model.parameters()],
        "state": {k: v.clone() for k, v in model.state_dict().items()},
    }


def _assert_same(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert before["training"] == after["training"]
    assert before["requires_grad"] == after["requires_grad"]
    assert all(g is None for g in after["grads"])
    assert after["hooks"] == before["hooks"]
    assert all(not h for h in after["tensor_hooks"])
    assert before["state"].keys() == after["state"].keys()
    for k, v in before["state"].items():
        assert torch.equal(v, after["state"][k]), k


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mode", ["eval", "train", "frozen"])
def test_a_call_leaves_no_hook_gradient_flag_or_mode_change(name: str, mode: str) -> None:
    verifier = _verifier("conv")  # BatchNorm in the stem: train mode would update its stats
    model = verifier.model
    if mode == "train":
        model.train()
    if mode == "frozen":
        model.requires_grad_(False)
    before = _snapshot(model)
    maps = registry.create("attention", name)(verifier, _images())
    assert not maps.requires_grad and maps.grad_fn is None
    _assert_same(before, _snapshot(model))


def test_train_mode_gives_the_eval_maps_dropout_and_batchnorm_are_inference() -> None:
    verifier = _verifier("conv")
    images = _images()
    gen = registry.create("attention", "vit-lrp")
    expected = gen(verifier, images)
    verifier.model.train()
    torch.testing.assert_close(gen(verifier, images), expected)


@pytest.mark.parametrize("name", ["vit-lrp", "grad-rollout"])
@pytest.mark.parametrize("context", ["no_grad", "inference_mode"])
def test_gradient_generators_work_inside_no_grad_and_inference_mode(
    name: str, context: str
) -> None:
    verifier = _verifier()
    gen = registry.create("attention", name)
    images = _images()
    expected = gen(verifier, images)
    ctx = torch.no_grad() if context == "no_grad" else torch.inference_mode()
    with ctx:
        got = gen(verifier, images)
    torch.testing.assert_close(got.clone(), expected)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.mark.parametrize("name", ["vit-lrp", "nograd-lrp", "rollout"])
def test_repeated_calls_do_not_grow_memory(name: str) -> None:
    verifier = _verifier()
    gen = registry.create("attention", name)
    images = _images(2)
    for _ in range(5):  # warm-up: allocator pools, lazy imports
        gen(verifier, images)
    gc.collect()
    tracemalloc.start()
    rss0 = _rss_bytes()
    py0 = tracemalloc.get_traced_memory()[0]
    for _ in range(30):
        gen(verifier, images)
    gc.collect()
    py_growth = tracemalloc.get_traced_memory()[0] - py0
    tracemalloc.stop()
    rss_growth = _rss_bytes() - rss0
    # One call's working set here is ~10 MB; a leak of its graph or activations would add that
    # per call (300 MB over 30 calls).
    assert py_growth < 256 * 1024, f"Python objects grew by {py_growth} bytes"
    assert rss_growth < 24 * 2**20, f"RSS grew by {rss_growth / 2**20:.1f} MiB"
    assert not any(
        type(o) is torch.Tensor and o.grad_fn is not None for o in gc.get_objects()
    ), "a tensor of a graph survived the calls"
