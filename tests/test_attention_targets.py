"""Targets of the attention maps (paper Sec. 3.1; docs/method.md, "Targets": the arg-max
identity logit) and the validation of every argument of the generator call.
"""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
from xfr_plugins.attention.targets import readout
from xfr_plugins.verifiers.face_vit import FaceViTVerifier
from xfr_plugins.verifiers.sface import SFaceVerifier
from xfr_plugins.verifiers.timm_vit import TimmViTVerifier

from xfr import registry
from xfr.errors import InputError, InputTypeError

torch.set_num_threads(1)


def _face_vit(num_classes: int = 6) -> FaceViTVerifier:
    torch.manual_seed(0)
    return FaceViTVerifier.load(None, dim=32, depth=2, heads=2, mlp_dim=64,
                                num_classes=num_classes)


def _images(n: int = 2, size: int = 112) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(2)) * 255


def _features(verifier: FaceViTVerifier, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return verifier.model(images)  # the CLS features (unnormalised embedding)


def test_logit_target_is_the_arg_max_identity_and_its_cosface_direction() -> None:
    v = _face_vit()
    f = _features(v, _images())
    r = readout(v, f, "logit")
    logits = v.class_logits(f)
    assert torch.equal(r.class_index, logits.argmax(-1))
    torch.testing.assert_close(r.score.detach(), logits.max(-1).values)
    # The read-out recovered from class_logits alone is the head's scaled class centre ...
    head = v.model.head
    centres = head.s * F.normalize(head.weight, dim=-1)[r.class_index]
    torch.testing.assert_close(r.direction, centres, atol=1e-4, rtol=1e-4)
    # ... applied to the normalised features, and reproduces the logit.
    assert r.normalized
    torch.testing.assert_close((r.inputs * r.direction).sum(-1), r.score.detach(),
                               atol=1e-4, rtol=1e-4)


def test_logit_target_of_a_linear_head_reads_its_weight_row() -> None:
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32,
                              patch_size=8, embed_dim=32, depth=1, num_heads=2, num_classes=5)
    v = TimmViTVerifier(model)
    with torch.no_grad():
        f = v.features(_images(2, 32))
    r = readout(v, f, "logit")
    assert not r.normalized
    torch.testing.assert_close(r.direction, model.head.weight[r.class_index].detach())


def test_embedding_target_is_the_norm_along_its_own_direction() -> None:
    v = _face_vit()
    f = _features(v, _images())
    r = readout(v, f, "embedding")
    torch.testing.assert_close(r.score, f.norm(dim=-1))
    torch.testing.assert_close(r.direction, F.normalize(f, dim=-1))


def test_similarity_target_is_the_cosine_to_the_reference() -> None:
    v = _face_vit()
    f = _features(v, _images())
    ref = torch.randn(2, 32)
    r = readout(v, f, "similarity", ref)
    torch.testing.assert_close(r.score, F.cosine_similarity(f, ref, dim=-1))
    one = readout(v, f, "similarity", ref[0])  # (D,) broadcasts to every image
    torch.testing.assert_close(one.score, F.cosine_similarity(f, ref[:1].expand(2, -1), dim=-1))


def test_auto_target_is_the_logit_with_a_head_and_the_embedding_without() -> None:
    with_head, headless = _face_vit(6), _face_vit(0)
    assert readout(with_head, _features(with_head, _images()), "auto").kind == "logit"
    assert readout(headless, _features(headless, _images()), "auto").kind == "embedding"


def test_logit_target_without_a_head_names_the_problem() -> None:
    gen = registry.create("attention", "vit-lrp")
    with pytest.raises(ValueError, match="identity head"):
        gen(_face_vit(0), _images(), target="logit")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"target": "class"}, ValueError, "target must be one of"),
        ({"target": "similarity"}, ValueError, "needs reference"),
        ({"target": "similarity", "reference": torch.randn(3, 32)}, ValueError, "shape"),
        ({"target": "similarity", "reference": torch.randn(2, 16)}, ValueError, "dimension"),
        ({"target": "similarity", "reference": torch.zeros(2, 32)}, ValueError, "zero vector"),
        ({"target": "similarity", "reference": [[1.0] * 32] * 2}, TypeError, "torch.Tensor"),
        ({"target": "logit", "reference": torch.randn(2, 32)}, ValueError, "only used"),
    ],
)
def test_bad_targets_and_references_raise_clear_errors(kwargs, error, match) -> None:
    gen = registry.create("attention", "nograd-lrp")
    with pytest.raises(error, match=match):
        gen(_face_vit(), _images(), **kwargs)


@pytest.mark.parametrize(
    ("images", "error", "match"),
    [
        (torch.rand(2, 3, 64, 64) * 255, InputError, "64x64 images, but the verifier takes 112"),
        (torch.rand(3, 112, 112), InputError, r"got shape \(3, 112, 112\)"),
        (torch.rand(0, 3, 112, 112), InputError, "empty"),
        (torch.full((1, 3, 112, 112), float("nan")), InputError, "NaN"),
        (torch.rand(1, 3, 112, 112) - 0.5, InputError, "outside 0..255"),
        ("not a tensor", InputTypeError, "got str, not a torch.Tensor"),
    ],
)
def test_bad_images_raise_clear_errors(images, error, match) -> None:
    for name in ("rollout", "vit-lrp"):
        with pytest.raises(error, match=match):
            registry.create("attention", name)(_face_vit(), images)


def test_a_black_box_verifier_is_refused_with_a_clear_error() -> None:
    try:
        sface = SFaceVerifier()
    except Exception as exc:  # pragma: no cover - the wheel or OpenCV is missing
        pytest.skip(f"SFace unavailable: {exc}")
    with pytest.raises(TypeError, match="not a ViT verifier"):
        registry.create("attention", "rollout")(sface, _images())


@pytest.mark.parametrize(
    ("name", "options", "error"),
    [
        ("rollout", {"variant": "other"}, ValueError),
        ("rollout", {"discard_ratio": 1.0}, ValueError),
        ("rollout", {"head_fusion": "median"}, ValueError),
        ("vit-lrp", {"alpha": 0}, ValueError),
        ("vit-lrp", {"start": "half"}, ValueError),
        ("nograd-lrp", {"batch_size": 0}, ValueError),
        ("attention", {"block": 1.5}, TypeError),
        ("grad-rollout", {"discard_ratio": "0.5"}, TypeError),
    ],
)
def test_bad_options_raise_at_construction(name: str, options: dict, error: type) -> None:
    with pytest.raises(error):
        registry.create("attention", name, **options)


def test_an_out_of_range_block_is_named() -> None:
    with pytest.raises(ValueError, match="out of range"):
        registry.create("attention", "attention", block=5)(_face_vit(), _images())
