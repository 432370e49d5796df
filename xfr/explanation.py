"""The result of explaining one face pair (DESIGN.md, "Explanation").

Every intermediate value of the paper's pipeline (Fig. 1) is kept: the decision, both attention
maps, both Otsu masks, every candidate mask with its removed area RA, its distances after
masking and its selection score (or why it was not eligible), the chosen strategy and the two
final heatmaps. ``to_dict``/``from_dict`` and ``to_json``/``from_json`` round-trip exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


def _array_to_json(a: np.ndarray | None) -> dict[str, Any] | None:
    if a is None:
        return None
    a = np.asarray(a)
    return {"dtype": str(a.dtype), "shape": list(a.shape), "data": a.ravel().tolist()}


def _array_from_json(d: dict[str, Any] | None) -> np.ndarray | None:
    if d is None:
        return None
    return np.asarray(d["data"], dtype=np.dtype(d["dtype"])).reshape(d["shape"])


@dataclass
class Candidate:
    """One candidate mask strategy of one pair (paper Sec. 3.2-3.3)."""

    name: str
    #: ``(H, W)`` bool, ``True`` where pixels are removed from both faces.
    mask: np.ndarray
    #: Removed area RA: the removed fraction of the image, 0..1 (REFERENCE.md).
    removed_area: float
    #: Distances after masking: ``{"pg": .., "pp": ..}`` (positive) or ``{"npg": ..}``.
    distances: dict[str, float] = field(default_factory=dict)
    #: SM+ / SM- value, ``None`` when not eligible.
    score: float | None = None
    eligible: bool = True
    #: Why the candidate is not eligible (e.g. ``"empty mask (RA = 0)"``), else ``None``.
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mask": _array_to_json(self.mask),
            "removed_area": self.removed_area,
            "distances": dict(self.distances),
            "score": self.score,
            "eligible": self.eligible,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Candidate:
        mask = _array_from_json(d["mask"])
        assert mask is not None
        return cls(
            name=d["name"],
            mask=mask,
            removed_area=float(d["removed_area"]),
            distances={k: float(v) for k, v in d["distances"].items()},
            score=None if d["score"] is None else float(d["score"]),
            eligible=bool(d["eligible"]),
            reason=d["reason"],
        )


@dataclass
class Explanation:
    """Why a verifier accepted or rejected one probe/gallery pair."""

    #: ``"positive"`` (same person: distance < threshold) or ``"negative"``.
    decision: str
    distance: float
    threshold: float
    #: Explainer that produced it (``"paper"``, ``"minplus"``, ...).
    method: str
    #: ``(2, H, W)`` final heatmaps in [0, 1] (probe, gallery); ``None`` when the method has
    #: no meaning for this decision (see ``notes``).
    heatmaps: np.ndarray | None
    #: ``(2, H, W)`` attention maps in [0, 1] (probe, gallery), for propagation methods.
    attention_maps: np.ndarray | None = None
    #: ``(2, H, W)`` bool Otsu masks of the attention maps.
    masks: np.ndarray | None = None
    candidates: list[Candidate] = field(default_factory=list)
    #: The chosen strategy, ``None`` when none was eligible or the method has none.
    strategy: str | None = None
    #: Why ``strategy`` was chosen (or why none was).
    selection_reason: str | None = None
    #: ``(2, H, W, 3)`` uint8 aligned faces (probe, gallery), for figures.
    faces: np.ndarray | None = None
    #: Method-specific settings and remarks (generator, selector, verifier, warnings).
    notes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (arrays as ``{dtype, shape, data}``)."""
        return {
            "decision": self.decision,
            "distance": self.distance,
            "threshold": self.threshold,
            "method": self.method,
            "heatmaps": _array_to_json(self.heatmaps),
            "attention_maps": _array_to_json(self.attention_maps),
            "masks": _array_to_json(self.masks),
            "candidates": [c.to_dict() for c in self.candidates],
            "strategy": self.strategy,
            "selection_reason": self.selection_reason,
            "faces": _array_to_json(self.faces),
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Explanation:
        return cls(
            decision=d["decision"],
            distance=float(d["distance"]),
            threshold=float(d["threshold"]),
            method=d["method"],
            heatmaps=_array_from_json(d["heatmaps"]),
            attention_maps=_array_from_json(d.get("attention_maps")),
            masks=_array_from_json(d.get("masks")),
            candidates=[Candidate.from_dict(c) for c in d.get("candidates", [])],
            strategy=d.get("strategy"),
            selection_reason=d.get("selection_reason"),
            faces=_array_from_json(d.get("faces")),
            notes=dict(d.get("notes", {})),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Explanation:
        return cls.from_dict(json.loads(text))

    def candidate(self, name: str) -> Candidate:
        """The candidate called ``name`` (``KeyError`` listing the names otherwise)."""
        for c in self.candidates:
            if c.name == name:
                return c
        raise KeyError(f"no candidate {name!r}; candidates: {[c.name for c in self.candidates]}")

    def save(self, directory: str | Path, stem: str = "explanation") -> tuple[Path, Path]:
        """Write ``<stem>.png`` (the figure) and ``<stem>.json`` into ``directory``."""
        from xfr.errors import OutputError
        from xfr.figure import render_figure

        out = Path(directory)
        if out.exists() and not out.is_dir():
            raise OutputError(f"cannot save into {out}: it is a file, not a folder")
        out.mkdir(parents=True, exist_ok=True)
        png, js = out / f"{stem}.png", out / f"{stem}.json"
        render_figure(self, png)
        js.write_text(self.to_json())
        return png, js
