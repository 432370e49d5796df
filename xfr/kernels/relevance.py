"""The element-wise steps of layer-wise relevance propagation, compiled (issue 19).

Relevance propagation through a ViT (docs/method.md, "LRP rules") is matrix products and
element-wise work on activations of ``(N, T, C)`` and ``(N, H, T, T)``; the element-wise part
took about half of an LRP map's time, most of it the guarded division of every rule, which
torch computes in six passes over memory (``b + eps``, two comparisons, two fills, the
division). These functions do each step in one pass:

- :func:`safe_divide`: ``a / (b + 1e-9)``, ``1e-9`` where that sum is 0, and 0 where
  ``b == 0`` (the guard of Chefer et al.'s code, which the paper's authors ran);
- :func:`alpha_beta_shares`: the coefficients of the alpha-beta rule of one linear layer from
  its output relevance and the signed and absolute pre-activations.

They take torch tensors and return torch tensors. CPU tensors of ``float32`` or ``float64``
that need no gradient run in the compiled kernels (``xfr._kernels``: the same IEEE operations
in the same order as the torch code, so the results are equal bit for bit; as many threads as
torch uses, :func:`torch.get_num_threads`); anything else (other devices or dtypes, shapes that
broadcast, tensors that need a gradient) runs the torch code, which defines the result.
:func:`use_compiled` switches the compiled kernels off and on (benchmarks and tests run both
ways side by side).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from xfr.kernels import _native

__all__ = ["EPS", "alpha_beta_shares", "alpha_beta_shares_torch", "safe_divide",
           "safe_divide_torch", "use_compiled"]

#: The guard of every division of relevance propagation (docs/method.md, "LRP rules").
EPS = 1e-9

_COMPILED_DTYPES = (torch.float32, torch.float64)
_enabled = [True]


@contextlib.contextmanager
def use_compiled(enabled: bool) -> Iterator[None]:
    """Within the block, run the compiled kernels (``True``, the default) or the torch code
    only (``False``); restored after."""
    before = _enabled[0]
    _enabled[0] = bool(enabled)
    try:
        yield
    finally:
        _enabled[0] = before


def _compiled(*tensors: torch.Tensor) -> bool:
    """Whether the compiled kernels take these tensors: one CPU float dtype, one shape, no
    gradient wanted (and :func:`use_compiled` not switched off)."""
    first = tensors[0]
    if not _enabled[0]:
        return False
    if first.device.type != "cpu" or first.dtype not in _COMPILED_DTYPES:
        return False
    grad = torch.is_grad_enabled()
    return all(t.device == first.device and t.dtype == first.dtype and t.shape == first.shape
               and not (grad and t.requires_grad) for t in tensors)


def _array(t: torch.Tensor) -> object:
    return t.detach().contiguous().numpy()


def safe_divide(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a / (b + 1e-9)``, 0 where ``b == 0``; a denominator that the guard itself cancels
    becomes 1e-9 (docs/method.md, "LRP rules")."""
    if _compiled(a, b):
        out = _native().safe_divide(_array(a), _array(b), torch.get_num_threads())
        return torch.from_numpy(out)
    return safe_divide_torch(a, b)


def safe_divide_torch(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """:func:`safe_divide` in torch operations: the definition (any device, dtype,
    broadcasting, autograd)."""
    den = b + EPS
    den.masked_fill_(den == 0, EPS)
    out = a / den
    return out.masked_fill_(b == 0, 0.0)


def alpha_beta_shares(relevance: torch.Tensor, z_signed: torch.Tensor, z_abs: torch.Tensor,
                      alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The alpha-beta rule's coefficients ``(signed, absolute)`` of a linear layer ``x W^T``
    (``beta = alpha - 1``; docs/method.md, "LRP rules").

    ``z_signed = x W^T`` and ``z_abs = |x| |W|^T``, so the activators' pre-activation is
    ``z_act = (z_signed + z_abs) / 2`` and the inhibitors' ``z_inh = (z_signed - z_abs) / 2``;
    with ``u = alpha R / z_act`` and ``t = (1 - alpha) R / z_inh`` (guarded divisions),
    ``signed = u + t`` and ``absolute = u - t``. For ``alpha == 1`` (no inhibitors) both are
    ``R / z_act``. The input's relevance is then ``(x (signed W) + |x| (absolute |W|)) / 2``.
    """
    if _compiled(relevance, z_signed, z_abs):
        signed, absolute = _native().alpha_beta_shares(
            _array(relevance), _array(z_signed), _array(z_abs), float(alpha),
            torch.get_num_threads())
        return torch.from_numpy(signed), torch.from_numpy(absolute)
    return alpha_beta_shares_torch(relevance, z_signed, z_abs, alpha)


def alpha_beta_shares_torch(relevance: torch.Tensor, z_signed: torch.Tensor,
                            z_abs: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`alpha_beta_shares` in torch operations: the definition."""
    u = safe_divide_torch(relevance, (z_signed + z_abs).mul_(0.5))
    if alpha == 1.0:  # beta = 0: the inhibitors take nothing
        return u, u
    u.mul_(alpha)
    t = safe_divide_torch(relevance, (z_signed - z_abs).mul_(0.5)).mul_(1.0 - alpha)
    return u + t, u.sub_(t)
