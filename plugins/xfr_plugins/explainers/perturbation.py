"""Shared machinery of the perturbation baselines MinPlus, AVG, RISE and LIME.

The paper (Sec. 2 and Sec. 4, Fig. 2) compares its propagation-based explainer with the
perturbation-based tools of the field: LIME [RSG16], RISE [PDS18], AVG [MM22] and MinPlus [Me22].
They need nothing but the verifier's embeddings (``Verifier.embed``), so they explain any
verifier, a ViT or a black box. This module holds what the four have in common:

- option handling: every parameter is a constructor keyword and can be overridden per call
  (``explain_pairs(..., **options)``); each method declares its options once
  (:mod:`xfr_plugins.explainers.options`), so an unknown name or a wrong type is an
  ``OptionTypeError``, a bad value an ``OptionError``, the message naming the method;
- input validation (:func:`xfr.interfaces.check_face_pairs`: ``(N, 3, S, S)`` tensors of
  finite RGB values in 0..255, ``S`` equal to the verifier's ``input_size``);
- a counting, batching embedder: perturbed images are built lazily from *sources* and go through
  the verifier in batches of at most ``batch_size`` images (one ``embed`` call per batch,
  batches cross source boundaries), so memory stays bounded whatever the number of
  perturbations;
- the Gaussian kernel and the smoothing/normalisation used by MinPlus/AVG (Mery's code:
  ``gaussian_kernel(nh, nh / 8.5)`` peak-normalised, ``cv2.filter2D`` with reflect-101 borders,
  then min-max);
- building the :class:`~xfr.explanation.Explanation` (decision ``distance < threshold`` as in the
  paper's Sec. 3.1).

The *score* of the baselines is the dot product of the two embeddings, as the authors ran them
(docs/method.md, "Perturbation baselines"). xfr's verifiers return L2-normalised embeddings, so
this dot product is the cosine similarity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from scipy import ndimage

from xfr.explanation import Explanation
from xfr.interfaces.images import check_face_pairs
from xfr.interfaces.images import faces_uint8 as faces_to_uint8
from xfr.interfaces.verifier import Verifier
from xfr.interfaces.vocabulary import POSITIVE, Decision, decide
from xfr.options import Options as Declaration
from xfr_plugins.explainers.options import PerturbationOptions

__all__ = [
    "COMMON_DEFAULTS",
    "CountingEmbedder",
    "PairContext",
    "PairResult",
    "PerturbationExplainer",
    "Source",
    "check_verifier",
    "gaussian_kernel",
    "make_progress",
    "minmax",
    "smooth",
    "stream_embeddings",
]

#: Options every baseline accepts, with their defaults (declared in
#: :class:`~xfr_plugins.explainers.options.PerturbationOptions`).
COMMON_DEFAULTS: dict[str, Any] = PerturbationOptions().as_dict()


# --------------------------------------------------------------------------- validation


def check_verifier(verifier: Any) -> Verifier:
    """Raise ``TypeError`` unless ``verifier`` has ``embed``, ``distance`` and ``threshold``."""
    missing = [a for a in ("embed", "distance", "threshold") if not hasattr(verifier, a)]
    if missing:
        raise TypeError(
            f"verifier {type(verifier).__name__} lacks {', '.join(missing)}: "
            "expected an xfr.interfaces.Verifier"
        )
    if not callable(verifier.embed) or not callable(verifier.distance):
        raise TypeError("verifier.embed and verifier.distance must be callable")
    thr = verifier.threshold
    if not isinstance(thr, (int, float)) or not math.isfinite(float(thr)):
        raise ValueError(f"verifier.threshold must be a finite number, got {thr!r}")
    return verifier


# --------------------------------------------------------------------------- embedding


@dataclass
class Source:
    """``count`` perturbed images of one explained image, built on demand.

    ``build(start, stop)`` returns images ``start..stop-1`` as ``(stop - start, 3, S, S)``.
    """

    count: int
    build: Callable[[int, int], torch.Tensor]


class CountingEmbedder:
    """Embeds through the verifier in batches of at most ``batch_size`` and counts the images."""

    def __init__(self, verifier: Verifier, batch_size: int) -> None:
        self.verifier = verifier
        self.batch_size = int(batch_size)
        #: Images embedded so far (one "verifier call" per image).
        self.images = 0
        #: ``embed`` invocations so far.
        self.batches = 0
        self._dim: int | None = None

    def _embed_one(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = self.verifier.embed(images)
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != images.shape[0]:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                f"verifier.embed returned {shape} for {images.shape[0]} images; "
                "expected an (N, D) tensor"
            )
        if self._dim is not None and out.shape[1] != self._dim:
            raise ValueError(
                f"verifier.embed changed its dimension ({self._dim} -> {out.shape[1]})"
            )
        self._dim = int(out.shape[1])
        if not bool(torch.isfinite(out).all()):
            raise ValueError("verifier.embed returned NaN or infinite embeddings")
        self.images += int(images.shape[0])
        self.batches += 1
        return out.detach()

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Embed ``images`` (in chunks of ``batch_size``)."""
        parts = [
            self._embed_one(images[i : i + self.batch_size])
            for i in range(0, images.shape[0], self.batch_size)
        ]
        return torch.cat(parts)


def stream_embeddings(
    embedder: CountingEmbedder,
    sources: Sequence[Source],
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, int, int, torch.Tensor]]:
    """Embed the images of ``sources`` in order, ``batch_size`` images per verifier call.

    Yields ``(source index, start, stop, embeddings)`` pieces; a batch may span several
    sources. Only one batch of images exists at a time. ``on_batch(n)`` is called after each
    verifier call with its number of images (progress bars).
    """
    bs = embedder.batch_size
    pending: list[tuple[int, int, int, torch.Tensor]] = []
    filled = 0

    def flush() -> list[tuple[int, int, int, torch.Tensor]]:
        images = torch.cat([p[3] for p in pending]) if len(pending) > 1 else pending[0][3]
        emb = embedder._embed_one(images)
        if on_batch is not None:
            on_batch(int(images.shape[0]))
        out, offset = [], 0
        for k, start, stop, _ in pending:
            out.append((k, start, stop, emb[offset : offset + stop - start]))
            offset += stop - start
        return out

    for k, src in enumerate(sources):
        start = 0
        while start < src.count:
            stop = min(src.count, start + bs - filled)
            pending.append((k, start, stop, src.build(start, stop)))
            filled += stop - start
            start = stop
            if filled == bs:
                yield from flush()
                pending, filled = [], 0
    if pending:
        yield from flush()


def scores(embeddings: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """Dot products (float64) of each row of ``embeddings`` with ``target`` ``(D,)``."""
    e = embeddings.to(torch.float64)
    t = target.to(device=e.device, dtype=torch.float64)
    return (e @ t).cpu().numpy()


# --------------------------------------------------------------------------- maps


def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """Peak-normalised ``size x size`` Gaussian (Mery's ``gaussian_kernel(type='Max')``)."""
    g = _gaussian_1d(size, sigma)
    return np.outer(g, g)


def _gaussian_1d(size: int, sigma: float) -> np.ndarray:
    # Offsets -size//2+1 .. size//2 (Mery's np.mgrid), so an even kernel peaks at size // 2.
    x = np.arange(-size // 2 + 1, size // 2 + 1, dtype=np.float64)
    return np.exp(-(x**2) / (2.0 * sigma**2))


def smooth(m: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """Correlate ``m`` with the peak-normalised Gaussian, reflect-101 borders (cv2.filter2D).

    The kernel is separable, so this runs as two 1-D passes (``scipy.ndimage``, mode
    ``mirror`` = OpenCV's ``BORDER_REFLECT_101``).
    """
    g = _gaussian_1d(size, sigma)
    # origin 0 puts the anchor at size // 2, as filter2D's default (checked for even sizes).
    out = ndimage.correlate1d(np.asarray(m, np.float64), g, axis=0, mode="mirror")
    return ndimage.correlate1d(out, g, axis=1, mode="mirror")


def minmax(m: np.ndarray) -> np.ndarray:
    """Min-max normalise to [0, 1] (float32); a constant map becomes all zeros."""
    m = np.asarray(m, np.float64)
    lo, hi = float(m.min()), float(m.max())
    if not hi > lo:
        return np.zeros(m.shape, np.float32)
    return ((m - lo) / (hi - lo)).astype(np.float32)


def make_progress(enabled: bool, total: int, desc: str) -> Any:
    """A tqdm bar (disabled unless ``enabled``)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False)


def faces_uint8(probe: torch.Tensor, gallery: torch.Tensor) -> np.ndarray:
    """``(2, S, S, 3)`` uint8 faces for figures."""
    return faces_to_uint8(torch.stack([probe, gallery]))


# --------------------------------------------------------------------------- the base class


@dataclass
class PairContext:
    """What every baseline knows about one pair before perturbing it."""

    index: int
    probe: torch.Tensor
    gallery: torch.Tensor
    #: Embeddings of the unperturbed probe and gallery ``(D,)``.
    emb_probe: torch.Tensor
    emb_gallery: torch.Tensor
    distance: float
    decision: Decision
    #: Dot product of the two embeddings (the cosine for normalised embeddings).
    score: float

    def image(self, side: int) -> torch.Tensor:
        """The explained image of ``side`` (0 probe, 1 gallery)."""
        return self.probe if side == 0 else self.gallery

    def target(self, side: int) -> torch.Tensor:
        """The fixed embedding the ``side`` image is compared with (the other image's)."""
        return self.emb_gallery if side == 0 else self.emb_probe


class PairResult(NamedTuple):
    """What :meth:`PerturbationExplainer._explain` gives for one pair: the heatmaps ``(2, H,
    W)`` (probe, gallery) or ``None``, the method's notes, and its method-specific arrays
    (:attr:`Explanation.extras <xfr.explanation.Explanation.extras>`; none by default)."""

    heatmaps: np.ndarray | None
    notes: dict[str, Any]
    extras: Mapping[str, np.ndarray] = MappingProxyType({})


class PerturbationExplainer:
    """Base of the perturbation baselines: options, validation, first embeddings, Explanation.

    Subclasses set :attr:`name` and :attr:`Options` (their options, declared once in
    :mod:`xfr_plugins.explainers.options`) and implement :meth:`_explain`, which returns one
    :class:`PairResult` per pair. The similarity explainers (xSSAB, CorrRISE, BiLRP) share this
    pair handling (:class:`xfr_plugins.explainers.similarity.SimilarityExplainer`).
    """

    name: str = ""
    #: The options declaration (``xfr plugins --options NAME``).
    Options: ClassVar[type[Declaration]] = PerturbationOptions

    def __init__(self, **options: Any) -> None:
        #: The checked options (frozen).
        self.settings = self.Options.parse(options)

    @property
    def options(self) -> dict[str, Any]:
        """The options as a dict, in declaration order (the common ones first)."""
        return self.settings.as_dict()

    def check_verifier(self, verifier: Any) -> None:
        """What :func:`check_verifier` says, before any image is prepared (``xfr.api``)."""
        check_verifier(verifier)

    def options_for(self, **options: Any) -> dict[str, Any]:
        """The options one call would use (constructor options, then ``options``)."""
        return self.Options.parse(options, base=self.settings).as_dict()

    # -- the contract
    def explain_pairs(
        self,
        verifier: Verifier,
        probes: torch.Tensor,
        galleries: torch.Tensor,
        **options: Any,
    ) -> list[Explanation]:
        """Explain N pairs of aligned faces ``(N, 3, S, S)`` (0..255 RGB), one result per pair.

        The result of each pair equals explaining that pair alone (the seed is used per image,
        not per position in the batch).
        """
        opts = self.options_for(**options)
        self.check_verifier(verifier)
        probes, galleries = check_face_pairs(
            probes, galleries, getattr(verifier, "input_size", None)
        )
        probes, galleries = probes.detach(), galleries.detach()
        n = probes.shape[0]
        embedder = CountingEmbedder(verifier, opts["batch_size"])
        emb = embedder(torch.cat([probes, galleries]))
        with torch.no_grad():
            dist = verifier.distance(emb[:n], emb[n:])
        dist_np = torch.as_tensor(dist).detach().to("cpu", torch.float64).reshape(-1).numpy()
        if dist_np.shape[0] != n or not np.isfinite(dist_np).all():
            raise ValueError(f"verifier.distance returned {dist_np!r} for {n} pairs")
        thr = float(verifier.threshold)
        pairs = [
            PairContext(
                index=i,
                probe=probes[i],
                gallery=galleries[i],
                emb_probe=emb[i],
                emb_gallery=emb[n + i],
                distance=float(dist_np[i]),
                decision=decide(dist_np[i], thr),
                score=float(scores(emb[i : i + 1], emb[n + i])[0]),
            )
            for i in range(n)
        ]
        todo = [p for p in pairs
                if p.decision == POSITIVE or opts.get("explain_negative", True)]
        results = self._explain(verifier, embedder, todo, opts) if todo else []
        by_index = {p.index: r for p, r in zip(todo, results, strict=True)}

        out: list[Explanation] = []
        for p in pairs:
            notes: dict[str, Any] = {"options": _jsonable(opts)}
            if "seed" in opts:
                notes["seed"] = int(opts["seed"])
            notes["score"] = p.score
            notes["score_kind"] = (
                "dot product of the embeddings (cosine: they are L2-normalised)")
            heatmaps: np.ndarray | None
            extras: dict[str, np.ndarray] = {}
            if p.index in by_index:
                heatmaps, extra, more = by_index[p.index]
                extras = dict(more)
                notes.update(extra)
                # each pair pays for its own two unperturbed images
                notes["verifier_calls"] = int(extra.get("verifier_calls", 0)) + 2
            else:
                heatmaps = None
                notes["unsupported"] = (
                    f"{self.name} explains positive decisions only (its authors' tools focus "
                    "on the regions that make two faces similar; paper Sec. 4); pass "
                    "explain_negative=True for this method's extension to negative decisions"
                )
                notes["verifier_calls"] = 2
            out.append(
                Explanation(
                    decision=p.decision,
                    distance=p.distance,
                    threshold=thr,
                    method=self.name,
                    heatmaps=heatmaps,
                    faces=faces_uint8(p.probe, p.gallery),
                    notes=notes,
                    extras=extras,
                )
            )
        return out

    def _explain(
        self,
        verifier: Verifier,
        embedder: CountingEmbedder,
        pairs: list[PairContext],
        opts: dict[str, Any],
    ) -> Sequence[PairResult]:  # pragma: no cover - overridden
        """One :class:`PairResult` per pair of ``pairs``, in their order."""
        raise NotImplementedError


# --------------------------------------------------------------------------- small helpers


def _jsonable(opts: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in opts.items():
        if isinstance(v, (np.integer,)):
            v = int(v)
        elif isinstance(v, (np.floating,)):
            v = float(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[k] = v
    return out
