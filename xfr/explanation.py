"""The result of explaining one face pair, the type every explainer returns (paper Sec. 3;
docs/design.md, "The role interfaces").

Every intermediate value of the paper's pipeline (Fig. 1) is kept: the decision, both attention
maps, both Otsu masks, every candidate mask with its removed area RA, its distances after
masking and its selection score (or why it was not eligible), the chosen strategy and the two
final heatmaps. Other explainers keep their own arrays in :attr:`Explanation.extras` (e.g.
xSSAB's similarity and dissimilarity maps, BiLRP's token interactions).
``to_dict``/``from_dict`` and ``to_json``/``from_json`` round-trip exactly.

:meth:`Explanation.save` writes three files: the figure (``<stem>.png``), a small JSON
(``<stem>.json``: metadata, decision, scores, every candidate without its mask, the notes) and
every array in one ``<stem>.npz`` beside it; :meth:`Explanation.load` reads both back exactly.
Every key of both files is documented in ``docs/explanation-format.md``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xfr.interfaces.vocabulary import Decision

#: The ``format`` of the JSON written by :meth:`Explanation.save`, and its version.
FORMAT = "xfr-explanation"
FORMAT_VERSION = 2
#: The array fields of :class:`Explanation` (the ``.npz`` beside the JSON).
ARRAY_FIELDS = ("heatmaps", "attention_maps", "masks", "faces")
#: Prefix of :attr:`Explanation.extras` in the ``.npz`` (``extra_<name>``).
EXTRA_PREFIX = "extra_"


def _array_to_json(a: np.ndarray | None) -> dict[str, Any] | None:
    if a is None:
        return None
    a = np.asarray(a)
    return {"dtype": str(a.dtype), "shape": list(a.shape), "data": a.ravel().tolist()}


def _array_from_json(d: dict[str, Any] | None) -> np.ndarray | None:
    return None if d is None else _array(d)


def _array(d: dict[str, Any]) -> np.ndarray:
    array: np.ndarray = np.asarray(d["data"], dtype=np.dtype(d["dtype"])).reshape(d["shape"])
    return array


@dataclass
class Candidate:
    """One candidate mask strategy of one pair (paper Sec. 3.2-3.3)."""

    name: str
    #: ``(H, W)`` bool, ``True`` where pixels are removed from both faces.
    mask: np.ndarray
    #: Removed area RA: the removed fraction of the image, 0..1 (eq. 1-2; docs/method.md,
    #: "Selection").
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
    decision: Decision
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
    #: Method-specific arrays by name (``extra_<name>`` in the ``.npz``), e.g. xSSAB's
    #: ``similarity`` and ``dissimilarity`` maps or BiLRP's ``interactions``
    #: (docs/explanation-format.md).
    extras: dict[str, np.ndarray] = field(default_factory=dict)

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
            "extras": {k: _array_to_json(v) for k, v in self.extras.items()},
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
            extras={k: _array(v) for k, v in d.get("extras", {}).items()},
        )

    def to_json(self) -> str:
        """Everything as one JSON text (arrays as number lists: large; see :meth:`save`)."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Explanation:
        """From :meth:`to_json`'s text, or from the small JSON of :meth:`save` while its
        ``.npz`` is still where it was written (else use :meth:`load` with the JSON's path)."""
        doc = json.loads(text)
        if doc.get("format") == FORMAT:
            arrays = Path(doc.get("arrays_path") or "")
            if not arrays.is_file():
                from xfr.errors import InputError

                raise InputError(f"the arrays of this explanation are in {doc.get('arrays')!r} "
                                 "beside its JSON: use Explanation.load(path_of_the_json)")
            return cls._from_files(doc, arrays)
        return cls.from_dict(doc)

    def summary(self, arrays: str, arrays_path: str | None = None) -> dict[str, Any]:
        """The small JSON of :meth:`save` (docs/explanation-format.md); ``arrays`` names the
        ``.npz`` holding :meth:`arrays_dict`."""
        from xfr import __version__

        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "xfr_version": __version__,
            "arrays": arrays,
            "arrays_path": arrays_path,
            "decision": self.decision,
            "distance": self.distance,
            "threshold": self.threshold,
            "method": self.method,
            "strategy": self.strategy,
            "selection_reason": self.selection_reason,
            "candidates": [{k: v for k, v in c.to_dict().items() if k != "mask"}
                           for c in self.candidates],
            "array_shapes": {k: list(v.shape) for k, v in self.arrays_dict().items()},
            "notes": self.notes,
        }

    def arrays_dict(self) -> dict[str, np.ndarray]:
        """Every array, by its ``.npz`` name: ``heatmaps``, ``attention_maps``, ``masks``,
        ``faces`` (those that are not ``None``), ``candidate_mask_<i>`` (``candidates[i]``) and
        ``extra_<name>`` (``extras[name]``)."""
        out = {k: np.asarray(getattr(self, k)) for k in ARRAY_FIELDS
               if getattr(self, k) is not None}
        out.update({f"candidate_mask_{i}": np.asarray(c.mask)
                    for i, c in enumerate(self.candidates)})
        out.update({f"{EXTRA_PREFIX}{k}": np.asarray(v) for k, v in self.extras.items()})
        return out

    @classmethod
    def _from_files(cls, doc: dict[str, Any], arrays: Path) -> Explanation:
        with np.load(arrays, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
        return cls(
            decision=doc["decision"],
            distance=float(doc["distance"]),
            threshold=float(doc["threshold"]),
            method=doc["method"],
            heatmaps=data.get("heatmaps"),
            attention_maps=data.get("attention_maps"),
            masks=data.get("masks"),
            candidates=[
                Candidate(name=c["name"], mask=data[f"candidate_mask_{i}"],
                          removed_area=float(c["removed_area"]),
                          distances={k: float(v) for k, v in c["distances"].items()},
                          score=None if c["score"] is None else float(c["score"]),
                          eligible=bool(c["eligible"]), reason=c["reason"])
                for i, c in enumerate(doc.get("candidates", []))],
            strategy=doc.get("strategy"),
            selection_reason=doc.get("selection_reason"),
            faces=data.get("faces"),
            notes=dict(doc.get("notes", {})),
            extras={k[len(EXTRA_PREFIX):]: v for k, v in data.items()
                    if k.startswith(EXTRA_PREFIX)},
        )

    @classmethod
    def load(cls, path: str | Path) -> Explanation:
        """Read what :meth:`save` wrote: ``path`` is the ``.json`` (or the ``.npz``, or the
        path without suffix); the arrays come from the ``.npz`` the JSON names, beside it.
        A JSON written by :meth:`to_json` (arrays inside) is read too."""
        from xfr.errors import InputError

        path = Path(path)
        js = path if path.suffix == ".json" else path.with_suffix(".json")
        if not js.is_file():
            raise FileNotFoundError(f"no saved explanation: {js}")
        try:
            doc = json.loads(js.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{js}: not an explanation JSON ({exc})") from None
        if doc.get("format") != FORMAT:
            return cls.from_dict(doc)
        arrays = js.parent / doc["arrays"]
        if not arrays.is_file():
            raise FileNotFoundError(f"{js}: its arrays file is missing: {arrays}")
        return cls._from_files(doc, arrays)

    def candidate(self, name: str) -> Candidate:
        """The candidate called ``name`` (``KeyError`` listing the names otherwise)."""
        for c in self.candidates:
            if c.name == name:
                return c
        raise KeyError(f"no candidate {name!r}; candidates: {[c.name for c in self.candidates]}")

    def save(self, directory: str | Path, stem: str = "explanation", *,
             figure: bool = True) -> tuple[Path | None, Path]:
        """Write ``<stem>.png`` (the figure), ``<stem>.json`` (small: metadata, decision,
        scores) and ``<stem>.npz`` (every array) into ``directory``; returns the PNG's and the
        JSON's paths. Many explanations go into one folder with distinct stems
        (``e.save(out, stem=f"pair_{i}")``); :meth:`load` reads them back. ``figure=False``
        writes no PNG (the PNG's path is then ``None``)."""
        from xfr.errors import OutputError
        from xfr.figure import render_figure

        out = Path(directory)
        if out.exists() and not out.is_dir():
            raise OutputError(f"cannot save into {out}: it is a file, not a folder")
        out.mkdir(parents=True, exist_ok=True)
        if not stem or Path(stem).name != stem:
            from xfr.errors import OptionError

            raise OptionError(f"stem must be a file name without folders, got {stem!r}")
        png, js, npz = out / f"{stem}.png", out / f"{stem}.json", out / f"{stem}.npz"
        if figure:
            render_figure(self, png)
        np.savez_compressed(npz, **self.arrays_dict())  # type: ignore[arg-type]
        js.write_text(json.dumps(self.summary(npz.name, str(npz.resolve())), indent=1))
        return (png if figure else None), js
