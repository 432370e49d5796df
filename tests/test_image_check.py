"""The one check of face images (:func:`xfr.interfaces.check_faces`; the verifier contract,
paper Sec. 3.1): one message per problem, xfr's own errors, the same check in every verifier,
attention generator and explainer, and no plugin reaching into another's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from xfr import registry
from xfr.errors import InputError, InputTypeError, UserError
from xfr.interfaces import check_face_pairs, check_faces

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = ("expected aligned faces: a torch.Tensor (N, 3, 112, 112) of RGB values in 0..255 "
            "(xfr.align makes them)")


def faces(n: int = 1, size: int = 112, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g).float()


def nan_faces() -> torch.Tensor:
    x = faces()
    x[0, 1, 5, 7] = float("nan")
    return x


BAD = [
    (np.zeros((1, 3, 112, 112)), InputTypeError, "got numpy.ndarray, not a torch.Tensor"),
    ("face.jpg", InputTypeError, "got str, not a torch.Tensor"),
    (torch.zeros(1, 3, 112, 112, dtype=torch.bool), InputTypeError,
     "got a tensor of torch.bool, not of numbers"),
    (torch.zeros(3, 112, 112), InputError, "got shape (3, 112, 112)"),
    (torch.zeros(1, 112, 112, 3), InputError, "got shape (1, 112, 112, 3)"),
    (torch.zeros(1, 3, 112, 96), InputError, "got shape (1, 3, 112, 96)"),
    (torch.zeros(2, 3, 64, 64), InputError,
     "got shape (2, 3, 64, 64): 64x64 images, but the verifier takes 112x112"),
    (torch.zeros(0, 3, 112, 112), InputError, "got an empty batch (N = 0)"),
    (nan_faces(), InputError, "got NaN or infinite values"),
    (torch.full((1, 3, 112, 112), float("inf")), InputError, "got NaN or infinite values"),
    (faces() / 127.5 - 1, InputError, "got values from -1 to 1, outside 0..255 (normalised "
     "images? pass the raw RGB values)"),
    (faces() * 2, InputError, "got values from 0 to 510, outside 0..255"),
]
IDS = ["ndarray", "str", "bool", "3-d", "nhwc", "not-square", "64x64", "empty", "nan", "inf",
       "normalised", "too-large"]


@pytest.mark.parametrize(("images", "error", "problem"), BAD, ids=IDS)
def test_each_problem_has_one_clear_message(images, error, problem) -> None:
    with pytest.raises(error) as info:
        check_faces(images, 112, name="probes")
    message = str(info.value)
    assert message.startswith(f"probes: {problem}")
    assert message.endswith(f"; {EXPECTED}")
    # xfr's own errors, and the standard ones a caller would catch
    assert isinstance(info.value, UserError)
    assert isinstance(info.value, TypeError if error is InputTypeError else ValueError)


def test_good_faces_pass_unchanged_and_integers_become_float32() -> None:
    x = faces(2)
    assert check_faces(x, 112) is x
    x64 = x.double().requires_grad_()
    assert check_faces(x64, 112) is x64  # dtype and gradient kept
    as_float = check_faces(x.to(torch.uint8), 112)
    assert as_float.dtype == torch.float32 and torch.equal(as_float, x)
    # rounding of a blur or a resize is tolerated, by 1e-3 at most
    assert check_faces(x.clamp(0, 255) + 255.0005 - 255, None) is not None
    with pytest.raises(InputError, match="outside 0..255"):
        check_faces(torch.full((1, 3, 8, 8), 255.01))


def test_without_a_size_any_square_side_is_taken() -> None:
    assert check_faces(faces(1, 96), None).shape == (1, 3, 96, 96)
    assert check_faces(faces(1, 96), "not a size").shape == (1, 3, 96, 96)
    with pytest.raises(InputError, match=r"\(N, 3, S, S\)"):
        check_faces(torch.zeros(1, 3, 96, 80))


def test_pairs_must_have_one_shape() -> None:
    p, g = check_face_pairs(faces(2), faces(2, seed=1), 112)
    assert p.shape == g.shape == (2, 3, 112, 112)
    with pytest.raises(InputError, match=r"probes \(2, 3, 112, 112\) and galleries "
                                          r"\(1, 3, 112, 112\) must have the same shape"):
        check_face_pairs(faces(2), faces(1), 112)
    with pytest.raises(InputError, match="^galleries: got an empty batch"):
        check_face_pairs(faces(1), faces(0), 112)


def tiny_vit():
    torch.manual_seed(0)
    return registry.create("verifier", "face-vit", patch="p8s8", dim=32, depth=2, heads=2,
                           mlp_dim=64)


def _message(call) -> str:
    with pytest.raises(InputError) as info:
        call()
    return str(info.value)


@pytest.mark.parametrize("bad", [nan_faces(), torch.zeros(1, 3, 64, 64), faces() - 300],
                         ids=["nan", "size", "range"])
def test_every_caller_says_the_same(bad: torch.Tensor) -> None:
    v = tiny_vit()
    images = _message(lambda: check_faces(bad, 112))
    probes = _message(lambda: check_faces(bad, 112, name="probes"))
    good = faces()
    assert _message(lambda: v.embed(bad)) == images
    assert _message(lambda: registry.create("attention", "rollout")(v, bad)) == images
    assert _message(lambda: registry.create("explainer", "paper").explain_pairs(
        v, bad, good)) == probes
    assert _message(lambda: registry.create("explainer", "rise", n_masks=4).explain_pairs(
        v, bad, good)) == probes
    sface = registry.create("verifier", "sface")
    assert _message(lambda: sface.embed(bad)) == images


def private_imports(tree: ast.AST, package: str) -> list[str]:
    """``from xfr_plugins.X... import _name`` anywhere, and imports of another plugin's private
    module (``xfr_plugins.Y._module`` from outside ``xfr_plugins.Y``)."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith(
                "xfr_plugins"):
            continue
        parts = node.module.split(".")  # type: ignore[union-attr]
        private = [n.name for n in node.names if n.name.startswith("_")]
        foreign = len(parts) > 1 and parts[1] != package
        if private or (foreign and any(p.startswith("_") for p in parts[2:])):
            found.append(f"{node.lineno}: from {node.module} import "
                         + ", ".join(n.name for n in node.names))
    return found


def test_no_plugin_imports_another_plugin_s_private_names() -> None:
    sample = "from xfr_plugins.verifiers.face_vit import (\n    _check_images,\n    squared_l2,\n)"
    assert private_imports(ast.parse(sample), "verifiers") == [
        "1: from xfr_plugins.verifiers.face_vit import _check_images, squared_l2"]
    assert private_imports(ast.parse("from xfr_plugins.masks._base import X"), "masks") == []
    assert private_imports(ast.parse("from xfr_plugins.masks._base import X"), "selectors")
    found = []
    for path in sorted((ROOT / "plugins" / "xfr_plugins").rglob("*.py")):
        package = path.relative_to(ROOT / "plugins" / "xfr_plugins").parts[0]
        found += [f"{path.relative_to(ROOT)}:{f}"
                  for f in private_imports(ast.parse(path.read_text()), package)]
    assert found == []
