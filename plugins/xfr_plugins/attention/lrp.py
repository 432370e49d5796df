"""Layer-wise relevance propagation rules for ViTs (Chefer, Gur & Wolf 2021; docs/method.md,
"LRP rules").

Each rule maps the relevance of a layer's output to the relevance of its input(s), from the
activations of the forward pass; none of them needs autograd. The rules, as the paper's authors
ran them through Chefer et al.'s code:

- Linear layers: the alpha-beta rule with ``beta = alpha - 1`` (``alpha = 0.5`` as the
  paper's authors ran it, xfr's default; ``alpha = 1``, only positive contributions, Chefer et
  al.'s default). Biases take no relevance, so the rule conserves relevance exactly (up to the
  1e-9 guards) for every alpha whenever both the positive and the negative pre-activations of
  an output are non-zero; where one group is empty only ``alpha`` (or ``-beta``) of the
  relevance passes, as in the reference code.
- A tensor used twice (residual stream and branch input): the two relevances add up
  (:func:`clone_relevance`).
- Residual additions: relevance split in proportion to each term's contribution
  ``x * R / (x + y)``, then each share rescaled so that the two totals are
  ``|sum a| / (|sum a| + |sum b|)`` of the incoming total, per image: conserved.
- Matrix products (attention x values, queries x keys): the gradient x input split between the
  two operands, each share halved: conserved.
- LayerNorm, GELU, softmax, dropout, LayerScale: relevance passed through unchanged.
- The first layer on pixels: the z^B rule with the input's bounds (lowest and highest value
  of each image).
- Divisions ``a / b`` computed as ``a / (b + 1e-9)``, zero where ``b == 0``
  (:func:`safe_divide`, the reference code's guard).

Shapes follow ``torch.nn.functional.linear``: inputs ``(..., in)``, weights ``(out, in)``,
relevances ``(..., out)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from xfr.kernels.relevance import EPS, alpha_beta_shares, safe_divide

__all__ = [
    "EPS",
    "add_relevance",
    "check_alpha",
    "clone_relevance",
    "linear_alpha_beta",
    "linear_zb",
    "matmul_relevance",
    "readout_relevance",
    "safe_divide",
]


def check_alpha(alpha: float) -> float:
    """``alpha`` must be a finite number > 0 (``beta = alpha - 1``)."""
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise TypeError(f"alpha must be a number, got {type(alpha).__name__}") from None
    if not value == value or value in (float("inf"), float("-inf")) or value <= 0:
        raise ValueError(f"alpha must be a finite number > 0 (beta = alpha - 1), got {alpha}")
    return value


def linear_alpha_beta(
    x: torch.Tensor, weight: torch.Tensor, relevance: torch.Tensor, alpha: float = 1.0
) -> torch.Tensor:
    """Alpha-beta rule of ``y = x W^T (+ b)``; returns the relevance of ``x``.

    Activators (``x+ W+`` and ``x- W-``) get ``alpha`` of each output's relevance, inhibitors
    (``x+ W-`` and ``x- W+``) ``beta = alpha - 1`` of it, subtracted, as in Chefer et al.'s
    ``Linear.relprop``:

        R_x = x+ (u W+ + t W-) + x- (u W- + t W+),  u = alpha R / z_act,  t = -beta R / z_inh,
        z_act = x+ W+^T + x- W-^T,  z_inh = x+ W-^T + x- W+^T.

    Computed with four matrix products instead of eight: since ``x = x+ + x-``,
    ``|x| = x+ - x-`` (and the same for ``W``), ``z_act = (x W^T + |x| |W|^T) / 2``,
    ``z_inh = (x W^T - |x| |W|^T) / 2`` and ``R_x = (x ((u + t) W) + |x| ((u - t) |W|)) / 2``:
    the same rule, rounded differently (docs/method.md, "LRP rules"). The element-wise steps
    in between run in one pass (:func:`xfr.kernels.relevance.alpha_beta_shares`).
    """
    abs_x, abs_w = x.abs(), weight.abs()
    z_signed = F.linear(x, weight)
    z_abs = F.linear(abs_x, abs_w)
    signed, absolute = alpha_beta_shares(relevance, z_signed, z_abs, alpha)
    out = x * (signed @ weight)
    return out.addcmul_(abs_x, absolute @ abs_w).mul_(0.5)


def readout_relevance(
    x: torch.Tensor, direction: torch.Tensor, relevance: torch.Tensor, alpha: float = 1.0
) -> torch.Tensor:
    """Alpha-beta rule of a per-sample linear read-out ``s = <x, w>`` (``(N, D)``, ``(N, D)``).

    The relevance ``(N,)`` of the score is shared over the ``D`` contributions ``x_i w_i``:
    positive ones in proportion (times alpha), negative ones in proportion (times
    ``beta = alpha - 1``, subtracted): exactly Chefer et al.'s ``Linear.relprop`` on the
    identity head's row, as the paper's authors ran it. When one group is empty (e.g. the
    embedding read along its own direction has only positive contributions) it takes nothing,
    so only ``alpha`` of the relevance (or ``-beta`` of it) enters the network: the rule does
    not conserve then, as in the authors' code (docs/method.md, "LRP rules").
    """
    c = x * direction
    cp, cn = c.clamp(min=0), c.clamp(max=0)
    r = relevance.unsqueeze(-1)
    sp, sn = cp.sum(-1, keepdim=True), cn.sum(-1, keepdim=True)
    act = cp * safe_divide(r, sp)
    if alpha == 1.0:
        return act
    inh = cn * safe_divide(r, sn)
    return alpha * act - (alpha - 1.0) * inh


def linear_zb(
    x: torch.Tensor,
    weight: torch.Tensor,
    relevance: torch.Tensor,
    low: torch.Tensor,
    high: torch.Tensor,
) -> torch.Tensor:
    """z^B rule for the first layer on pixels: ``x`` bounded by ``low <= x <= high``.

    ``R_i = sum_j (x_i w_ij - l_i w+_ij - h_i w-_ij) / z_j R_j`` (Montavon et al. 2017), as
    Chefer et al.'s first ``Conv2d``. ``low``/``high`` broadcast against ``x``; where both are 0
    together with ``x`` (padding) the input gets no relevance.
    """
    wp, wn = weight.clamp(min=0), weight.clamp(max=0)
    low = low.expand_as(x)
    high = high.expand_as(x)
    z = F.linear(x, weight) - F.linear(low, wp) - F.linear(high, wn)
    s = safe_divide(relevance, z)
    return x * (s @ weight) - low * (s @ wp) - high * (s @ wn)


def _per_sample_sum(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).sum(-1)


def _per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape((-1,) + (1,) * (like.ndim - 1))


def add_relevance(
    a: torch.Tensor, b: torch.Tensor, relevance: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Residual ``z = a + b``: split by contribution, then rescale to conserve, per sample.

    ``a`` and ``b`` broadcast to ``relevance``'s shape (e.g. a position embedding ``(1, T, C)``).
    """
    z = a + b
    s = safe_divide(relevance, z)
    ra, rb = (a * s).expand_as(relevance), (b * s).expand_as(relevance)
    sa, sb = _per_sample_sum(ra), _per_sample_sum(rb)
    total = _per_sample_sum(relevance)
    den = sa.abs() + sb.abs()
    fa = safe_divide(sa.abs(), den) * total
    fb = safe_divide(sb.abs(), den) * total
    ra = ra * _per_sample(safe_divide(fa, sa), ra)
    rb = rb * _per_sample(safe_divide(fb, sb), rb)
    return ra, rb


def clone_relevance(x: torch.Tensor, *relevances: torch.Tensor) -> torch.Tensor:
    """A tensor ``x`` used twice (the residual stream and a branch's input): the relevances
    of its uses add up, as ``x * sum_i (R_i / x)`` with the guarded division of
    :func:`safe_divide` (the reference code's ``Clone`` rule; zero where ``x == 0``)."""
    total = safe_divide(relevances[0], x)
    for r in relevances[1:]:
        total = total + safe_divide(r, x)
    return x * total


def matmul_relevance(
    a: torch.Tensor, b: torch.Tensor, relevance: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Matrix product ``z = a @ b``: gradient x input to each operand, each share halved."""
    z = a @ b
    s = safe_divide(relevance, z)
    ra = a * (s @ b.transpose(-2, -1))
    rb = b * (a.transpose(-2, -1) @ s)
    return ra.mul_(0.5), rb.mul_(0.5)
