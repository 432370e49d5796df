"""The explainer contract: a verifier and face pairs in, an ``Explanation`` per pair out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch

from xfr.interfaces.verifier import Verifier

if TYPE_CHECKING:
    from xfr.explanation import Explanation


@runtime_checkable
class Explainer(Protocol):
    """The paper's pipeline is one explainer; MinPlus, AVG, RISE and LIME are others."""

    name: str

    def explain_pairs(
        self,
        verifier: Verifier,
        probes: torch.Tensor,
        galleries: torch.Tensor,
        **options: Any,
    ) -> list[Explanation]:
        """Explain N pairs of aligned faces ``(N, 3, S, S)`` (0..255 RGB), one result per pair.

        Batched model calls per stage; the result equals explaining each pair alone.
        """
        ...
