"""The pair's relevance maps: xfr's measured default explanation (beyond the paper; issue 18).

The paper's explainer (Sec. 3) turns each face's attention map into an Otsu mask, combines
the two masks (OIM / UM / N-IUM), keeps the strategy that moves the distance most per removed
area (SM+ / SM-, eq. 1-2) and smooths the chosen binary mask with a 56-pixel Gaussian (Sec.
3.1). Measured with deletion and insertion curves against model-free references on held-out
LFW pairs (docs/faithfulness.md), that final heatmap is hardly better than a centred blob, while
the relevance maps it starts from carry the model's evidence. This explainer keeps the part
that is faithful and drops what blurs it:

1. **decide**: the two embeddings, their distance and the decision ``distance < threshold``
   (Sec. 3.1);
2. **attend**: each face's relevance map from an attention generator (default
   ``grad-rollout``: the attention of every block weighted by the gradient of the target,
   rolled out with the residual identity, Chefer et al. ICCV 2021, eq. 5-6; the paper's
   ViT-LRP with ``generator="vit-lrp"``) for the pair's own question
   (``target="decision"``): for a positive decision the cosine similarity of the face's
   embedding to the other face's ("what makes them alike"), for a negative one the
   dissimilarity ``-cos`` ("what makes them differ"), i.e. the similarity to the other
   face's negated embedding (docs/method.md, "Targets");
3. **pair**: how the two maps become the pair's heatmaps (``pairing``; default ``"own"``
   for positive decisions, ``"mean"`` for negative ones): ``"own"`` keeps each face's map;
   ``"mean"`` draws the mean of the two min-max normalised maps on both faces (one map of
   the pair, as the paper's heatmap is used);
4. **smooth**: a Gaussian at the scale of a token (``sigma`` pixels; default 4, half the
   default model's 8 px patch) instead of the paper's 56 px, so the heatmap keeps the
   spatial detail the model has.

Cost: two embedding passes and one relevance pass per face: 4 images through the ViT per pair
(``notes["model_passes"]``, counted as for the paper's explainer: 8), plus the backward pass
of each relevance pass (gradients; 6 in the forward + backward count of the similarity
explainers). Works on every ViT verifier that the attention generators support.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from xfr.errors import OptionError, OptionTypeError, PluginOutputError
from xfr.explanation import Explanation
from xfr.interfaces.images import check_face_pairs, faces_uint8
from xfr.interfaces.vocabulary import DECISIONS, POSITIVE, Decision, decide
from xfr_plugins.explainers.options import (
    DECISION_TARGET,
    PAIRINGS,
    RelevanceExplainerOptions,
)

if TYPE_CHECKING:
    from xfr.registry import Registry

#: Model passes per pair: two embeddings, two relevance passes.
MODEL_PASSES = 4


def gaussian_size(sigma: float, side: int) -> int:
    """The odd Gaussian window covering +-3 sigma, at most the image side (odd)."""
    size = 2 * math.ceil(3 * sigma) + 1
    limit = side if side % 2 else side - 1
    return max(1, min(size, limit))


def unit_range(maps: np.ndarray) -> np.ndarray:
    """Each map ``(..., H, W)`` scaled to [0, 1] (a constant map becomes 0)."""
    lo = maps.min(axis=(-2, -1), keepdims=True)
    span = maps.max(axis=(-2, -1), keepdims=True) - lo
    return np.where(span > 0, (maps - lo) / np.where(span > 0, span, 1), 0).astype(np.float32)


def pair_maps(maps_p: np.ndarray, maps_g: np.ndarray, pairing: str) -> np.ndarray:
    """``(N, 2, H, W)`` heatmaps of probe and gallery from their relevance maps ``(N, H, W)``."""
    p, g = unit_range(maps_p), unit_range(maps_g)
    if pairing == "own":
        return np.stack([p, g], axis=1)
    if pairing == "mean":
        shared = (p + g) / 2
        return np.stack([shared, shared], axis=1)
    raise OptionError(f"unknown pairing {pairing!r}; choose one of {PAIRINGS}")


def target_references(target: str, decisions: Sequence[Decision], e_p: torch.Tensor,
                      e_g: torch.Tensor) -> torch.Tensor | None:
    """The ``reference`` of each face ``(2N, D)`` (probes first) for the generators'
    ``similarity`` target: the other face's embedding; for :data:`DECISION_TARGET` negated
    where the decision is negative, so that the score explained is ``-cos``, the pair's
    dissimilarity (its relevance is the similarity's with the sign turned: the generators'
    positive relevance then marks what makes the faces differ). ``None`` for targets that
    need no reference."""
    if target not in ("similarity", DECISION_TARGET):
        return None
    reference = torch.cat([e_g, e_p])
    if target == DECISION_TARGET:
        sign = torch.tensor([1.0 if d == POSITIVE else -1.0 for d in decisions],
                            dtype=reference.dtype, device=reference.device)
        reference = reference * torch.cat([sign, sign])[:, None]
    return reference


class RelevanceExplainer:
    """The pair's relevance maps at token scale (see the module docstring).

    Options (constructor or per call; :class:`~xfr_plugins.explainers.options.
    RelevanceExplainerOptions`, ``xfr plugins --options relevance``): ``generator``
    (attention plugin), ``target`` (``"decision"``: similarity for a positive decision,
    dissimilarity for a negative one; or a generator target: ``"similarity"``,
    ``"embedding"``, ``"logit"``, ``"auto"``), ``pairing`` (``"own"`` or ``"mean"``) and
    ``sigma`` (Gaussian sigma in pixels; 0 = no smoothing), each once or per decision
    (``{"positive": ..., "negative": ...}``), and ``batch_size`` (pairs per model call). The
    defaults are the configuration chosen by measurement (docs/faithfulness.md).

    The attention generator is built in ``registry``, the registry that builds the explainer
    (``registry.create("explainer", "relevance")`` passes itself); ``None``: the process-wide
    one.
    """

    name = "relevance"
    #: The options declaration (``xfr plugins --options relevance``).
    Options: ClassVar[type[RelevanceExplainerOptions]] = RelevanceExplainerOptions

    def __init__(self, *, registry: Registry | None = None, **options: Any) -> None:
        self.registry = registry
        #: The checked options (frozen; ``pairing`` and ``sigma`` per decision).
        self.settings = self._checked(self.Options.parse(options))

    @property
    def options(self) -> dict[str, Any]:
        """The options as a dict, in declaration order."""
        return self.settings.as_dict()

    def options_for(self, **options: Any) -> dict[str, Any]:
        """The options one call would use (constructor options, then ``options``)."""
        return self._checked(self.Options.parse(options, base=self.settings)).as_dict()

    def _registry(self) -> Registry:
        from xfr import registry

        return self.registry if self.registry is not None else registry.default()

    def _checked(self, settings: RelevanceExplainerOptions) -> RelevanceExplainerOptions:
        """``settings`` once its generator is known (an unknown name lists the known ones)."""
        self._registry().get("attention", settings.generator)
        return settings

    def check_verifier(self, verifier: Any) -> None:
        """:class:`~xfr.errors.OptionTypeError` unless ``verifier`` is a ViT verifier."""
        if not hasattr(verifier, "backbone"):
            raise OptionTypeError(
                f"the relevance explainer needs a ViT verifier (attention maps); "
                f"{getattr(verifier, 'name', type(verifier).__name__)!r} is a black box: "
                "use a perturbation method (minplus, avg, rise, lime)")

    def explain_pairs(self, verifier: Any, probes: torch.Tensor, galleries: torch.Tensor,
                      **options: Any) -> list[Explanation]:
        opts = self.options_for(**options) if options else self.options
        self.check_verifier(verifier)
        probes, galleries = check_face_pairs(probes, galleries,
                                             getattr(verifier, "input_size", None))
        out: list[Explanation] = []
        bs = opts["batch_size"]
        for s in range(0, probes.shape[0], bs):
            out += self._explain_batch(verifier, probes[s:s + bs].float(),
                                       galleries[s:s + bs].float(), opts)
        return out

    # -- the steps (module docstring) ------------------------------------------------------
    @staticmethod
    def decide(verifier: Any, faces: torch.Tensor, n: int
               ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, list[Decision]]:
        """1. Both faces' embeddings, the distances and the decisions (paper Sec. 3.1)."""
        with torch.inference_mode():
            emb = verifier.embed(faces)
        e_p, e_g = emb[:n].clone(), emb[n:].clone()
        distances = verifier.distance(e_p, e_g).double().cpu().numpy()
        threshold = float(verifier.threshold)
        return e_p, e_g, distances, [decide(float(d), threshold) for d in distances]

    def attend(self, verifier: Any, faces: torch.Tensor, opts: dict[str, Any],
               reference: torch.Tensor | None) -> np.ndarray:
        """2. Each face's relevance map ``(2N, H, W)`` for the target (Sec. 3.1), from the
        generator built in the explainer's registry."""
        generator = self._registry().create("attention", opts["generator"])
        target = "similarity" if opts["target"] == DECISION_TARGET else opts["target"]
        raw = np.asarray(generator(verifier, faces, target=target, reference=reference),
                         dtype=np.float32)
        if raw.shape != (faces.shape[0], *faces.shape[-2:]) or not np.isfinite(raw).all():
            raise PluginOutputError(
                f"attention generator {opts['generator']!r} returned maps of shape "
                f"{raw.shape} (expected {(faces.shape[0], *faces.shape[-2:])}, finite)")
        return raw

    @staticmethod
    def pair_and_smooth(raw_p: np.ndarray, raw_g: np.ndarray, decisions: Sequence[Decision],
                        opts: dict[str, Any]) -> np.ndarray:
        """3.-4. The heatmaps ``(N, 2, H, W)``: each decision's pairing, then its Gaussian."""
        from xfr import kernels

        heat = np.empty((len(decisions), 2, *raw_p.shape[-2:]), dtype=np.float32)
        for d in DECISIONS:
            rows = [i for i, di in enumerate(decisions) if di == d]
            if not rows:
                continue
            h = pair_maps(raw_p[rows], raw_g[rows], opts["pairing"][d])
            sigma = opts["sigma"][d]
            if sigma > 0:
                size = gaussian_size(sigma, int(min(raw_p.shape[-2:])))
                flat = np.ascontiguousarray(h.reshape(-1, *h.shape[-2:]))
                h = np.asarray(kernels.gaussian(flat, size, sigma),
                               dtype=np.float32).reshape(h.shape)
            heat[rows] = h
        return heat

    def _explain_batch(self, verifier: Any, probes: torch.Tensor, galleries: torch.Tensor,
                       opts: dict[str, Any]) -> list[Explanation]:
        t0 = time.perf_counter()
        n = probes.shape[0]
        faces = torch.cat([probes, galleries])
        e_p, e_g, distances, decisions = self.decide(verifier, faces, n)
        t1 = time.perf_counter()
        raw = self.attend(verifier, faces, opts,
                          target_references(opts["target"], decisions, e_p, e_g))
        t2 = time.perf_counter()
        heat = self.pair_and_smooth(raw[:n], raw[n:], decisions, opts)
        t3 = time.perf_counter()
        seconds = {"embed": (t1 - t0) / n, "attention": (t2 - t1) / n, "smooth": (t3 - t2) / n}
        faces_u8 = faces_uint8(faces)
        threshold = float(verifier.threshold)
        return [Explanation(
            decision=decisions[i], distance=float(distances[i]), threshold=threshold,
            method=self.name, heatmaps=heat[i], attention_maps=np.stack([raw[i], raw[n + i]]),
            faces=np.stack([faces_u8[i], faces_u8[n + i]]),
            notes={"generator": opts["generator"], "target": opts["target"],
                   "explains": ("similarity" if decisions[i] == POSITIVE else "dissimilarity")
                   if opts["target"] == DECISION_TARGET else opts["target"],
                   "pairing": opts["pairing"][decisions[i]],
                   "sigma": opts["sigma"][decisions[i]],
                   "verifier": getattr(verifier, "name", type(verifier).__name__),
                   "model_passes": MODEL_PASSES, "seconds_per_pair": seconds})
            for i in range(n)]


__all__: Sequence[str] = ["DECISION_TARGET", "MODEL_PASSES", "PAIRINGS", "RelevanceExplainer",
                          "gaussian_size", "pair_maps", "target_references", "unit_range"]
