"""What an attention map explains: the target score of each image (paper Sec. 3.1).

- ``"logit"``: the arg-max identity logit of the verifier's training head,
  ``verifier.class_logits(features)`` (the paper's choice; docs/method.md, "Targets"). A
  verifier without a head raises ``ValueError``.
- ``"embedding"``: the embedding itself, as the score ``<e, stopgrad(e / ||e||)>``, i.e. its norm
  measured along its own (fixed) direction: gradients and relevance flow along the direction
  the embedding already points to. Note that after a plain LayerNorm with unit gain the norm
  of the embedding is nearly constant, so gradient-based maps of this target can be weak;
  the relevance-only maps (No-Grad ViT-LRP) do not suffer from it.
- ``"similarity"``: the cosine similarity of the embedding to ``reference`` (the other face of
  the pair), ``<e / ||e||, r / ||r||>``.
- ``"auto"``: ``"logit"`` when the verifier has a head, else ``"embedding"``. On the shipped
  headless model ``"similarity"`` was measured as no more faithful than ``"embedding"``
  (docs/method.md, "Target on a headless verifier"); the rounding noise of gradient maps of
  ``"embedding"`` in float32 is removed by computing the relevance in float64.

For relevance propagation each target is written as a linear read-out ``score = <u, w>`` of a
read-out input ``u`` (the CLS features, or their L2-normalised version, treated like a
LayerNorm: relevance passes through the normalisation) with a per-image direction ``w``
(detached). For the logit the direction is derived from ``class_logits`` alone, so that any
head works: for a head that is scale-invariant in the features (a cosine / CosFace head,
``s * <f / ||f||, c / ||c||>``) ``u = f / ||f||`` and ``w = ||f|| grad_f(score) + score * u``,
which recovers ``s * c / ||c||`` exactly; otherwise (a linear head) ``u = f`` and
``w = grad_f(score)``, its weight row (the bias takes no relevance, as in every linear layer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, get_args

import torch
import torch.nn.functional as F

from xfr.interfaces.attention import AttentionTarget

__all__ = [
    "TARGETS", "Readout", "check_reference", "check_target", "readout", "resolve_target",
]

TARGETS: tuple[str, ...] = get_args(AttentionTarget)


@dataclass
class Readout:
    """The target of each image as a linear read-out of the features."""

    kind: str  #: "logit" | "embedding" | "similarity"
    score: torch.Tensor  #: (N,) target score (differentiable if the features were)
    inputs: torch.Tensor  #: (N, D) read-out input, detached (features or normalised features)
    direction: torch.Tensor  #: (N, D) detached, ``score ~= <inputs, direction>``
    normalized: bool  #: whether ``inputs`` are the L2-normalised features
    class_index: torch.Tensor | None = None  #: (N,) arg-max identity for ``"logit"``


def check_target(target: Any) -> str:
    if not isinstance(target, str) or target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}; got {target!r}")
    return target


def check_reference(
    target: str, reference: Any, n: int, dim: int | None = None
) -> torch.Tensor | None:
    """Validate ``reference`` ``(N, D)`` (or ``(D,)``/``(1, D)``, broadcast) for ``similarity``."""
    if target != "similarity":
        if reference is not None:
            raise ValueError(f"reference is only used with target='similarity', not {target!r}")
        return None
    if reference is None:
        raise ValueError("target='similarity' needs reference embeddings (N, D)")
    if not isinstance(reference, torch.Tensor):
        raise TypeError(f"reference must be a torch.Tensor, got {type(reference).__name__}")
    ref = reference.float() if not reference.is_floating_point() else reference
    if ref.ndim == 1:
        ref = ref.unsqueeze(0)
    if ref.ndim != 2 or ref.shape[0] not in (1, n):
        raise ValueError(
            f"reference must have shape ({n}, D) or (D,), got {tuple(reference.shape)}"
        )
    if dim is not None and ref.shape[1] != dim:
        raise ValueError(f"reference has dimension {ref.shape[1]}, the embeddings {dim}")
    if not torch.isfinite(ref).all():
        raise ValueError("reference contains NaN or infinite values")
    if (ref.norm(dim=-1) == 0).any():
        raise ValueError("reference contains a zero vector (no direction to compare with)")
    return ref.expand(n, -1)


def _logit(verifier: Any, features: torch.Tensor) -> Readout:
    f = features.detach()
    with torch.enable_grad():
        fg = f.clone().requires_grad_(True)
        logits = verifier.class_logits(fg)
        if logits is None:
            raise ValueError(
                "target='logit' needs a verifier with an identity head "
                f"({type(verifier).__name__}.class_logits returned None); use 'embedding' "
                "or 'similarity'"
            )
        if logits.ndim != 2 or logits.shape[0] != f.shape[0]:
            raise ValueError(f"class_logits returned shape {tuple(logits.shape)}, not (N, C)")
        index = logits.detach().argmax(dim=-1)
        picked = logits.gather(1, index[:, None])[:, 0]
        (grad,) = torch.autograd.grad(picked.sum(), fg)
    score_detached = picked.detach()
    with torch.no_grad():
        doubled = verifier.class_logits(2.0 * f).gather(1, index[:, None])[:, 0]
    scale_invariant = torch.allclose(doubled, score_detached, rtol=1e-4, atol=1e-5)
    if scale_invariant:
        unit = F.normalize(f, dim=-1)
        direction = f.norm(dim=-1, keepdim=True) * grad + score_detached[:, None] * unit
        inputs = unit
    else:
        direction, inputs = grad, f
    # The differentiable score, for gradient-based generators.
    score = verifier.class_logits(features).gather(1, index[:, None])[:, 0]
    return Readout("logit", score, inputs, direction.detach(), scale_invariant, index)


def resolve_target(verifier: Any, features: torch.Tensor, target: str) -> str:
    """The concrete target of ``target`` (``auto``: ``logit`` with an identity head, else
    ``embedding``)."""
    target = check_target(target)
    if target != "auto":
        return target
    with torch.no_grad():
        has_head = verifier.class_logits(features[:1].detach()) is not None
    return "logit" if has_head else "embedding"


def readout(
    verifier: Any, features: torch.Tensor, target: str, reference: torch.Tensor | None = None
) -> Readout:
    """Resolve ``target`` for CLS ``features`` ``(N, D)`` (see the module docstring)."""
    target = resolve_target(verifier, features, target)
    if target == "logit":
        return _logit(verifier, features)
    if target == "embedding":
        direction = F.normalize(features.detach(), dim=-1)
        score = (features * direction).sum(-1)
        return Readout("embedding", score, features.detach(), direction, False)
    ref = check_reference("similarity", reference, features.shape[0], features.shape[1])
    assert ref is not None
    direction = F.normalize(ref.to(features), dim=-1)
    unit = F.normalize(features, dim=-1)
    score = (unit * direction).sum(-1)
    return Readout("similarity", score, unit.detach(), direction, True)
