"""What the similarity explainers share: xSSAB, CorrRISE and BiLRP (docs/method.md, "Similarity
explainers").

They take the pair handling of the perturbation baselines
(:class:`~xfr_plugins.explainers.perturbation.PerturbationExplainer`: options, checks, the two
unperturbed embeddings, the :class:`~xfr.explanation.Explanation`) and add:

- every decision is explained, each by the map that supports it (:func:`decision_map`): a
  positive decision by the regions that make the two faces alike (the **similarity** map), a
  negative one by those that make them differ (the **dissimilarity** map);
- each explanation notes that map (``notes["map"]``), what it shows (``notes["explains"]``,
  :func:`similarity_result`), its cost (``notes["model_passes"]``: the method's own passes
  plus the two unperturbed embeddings) and the call's wall time per pair
  (``notes["seconds_per_pair"]``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import torch

from xfr.explanation import Explanation
from xfr.interfaces.verifier import Verifier
from xfr.interfaces.vocabulary import POSITIVE, Decision
from xfr_plugins.explainers.perturbation import PairResult, PerturbationExplainer

__all__ = ["SimilarityExplainer", "SimilarityMap", "decision_map", "similarity_result"]

#: The two maps of a similarity explainer.
SimilarityMap = Literal["similarity", "dissimilarity"]


def decision_map(decision: Decision) -> SimilarityMap:
    """The map that supports ``decision``: similarity (positive), dissimilarity (negative)."""
    return "similarity" if decision == POSITIVE else "dissimilarity"


def similarity_result(decision: Decision, heatmaps: np.ndarray, notes: Mapping[str, Any],
                      extras: Mapping[str, np.ndarray],
                      explains: Mapping[SimilarityMap, str]) -> PairResult:
    """One pair's result: ``notes`` between ``"map"`` (:func:`decision_map`) and
    ``"explains"`` (``explains`` of that map)."""
    which = decision_map(decision)
    return PairResult(heatmaps, {"map": which, **notes, "explains": explains[which]}, extras)


class SimilarityExplainer(PerturbationExplainer):
    """Base of xSSAB, CorrRISE and BiLRP: the pair handling of the baselines, with the cost
    notes of the module docstring. Subclasses return :func:`similarity_result` per pair."""

    def explain_pairs(self, verifier: Verifier, probes: torch.Tensor, galleries: torch.Tensor,
                      **options: Any) -> list[Explanation]:
        start = time.perf_counter()
        out = super().explain_pairs(verifier, probes, galleries, **options)
        seconds = (time.perf_counter() - start) / max(len(out), 1)
        for e in out:
            e.notes["model_passes"] = int(e.notes.get("model_passes", 0)) + 2
            e.notes["seconds_per_pair"] = seconds
        return out
