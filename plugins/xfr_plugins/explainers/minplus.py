"""MinPlus (Mery, "True Black-Box Explanation in Facial Analysis", CVPRW 2022; paper [Me22]).

A perturbation baseline of the paper (Sec. 2; Sec. 4, Fig. 2). Parameters and semantics as its
authors ran them (docs/method.md, "Perturbation baselines"):

- Holes: ``1 - G`` with ``G`` the peak-normalised Gaussian of ``nh = 161`` pixels,
  ``sigma = nh / 8.5``, centred on the grid ``d, 2d, ... < S`` (``d = 16``: 6 x 6 = 36
  positions on 112 x 112), placed exactly as Mery's ``DefineGaussianMask``.
- Score: dot product of the explained image's embedding with the other image's (unperturbed)
  embedding. xfr's embeddings are L2-normalised, so the score is the cosine similarity.
- **Minus**: from the face, each round tries every grid position whose centre pixel is not yet
  black, and keeps the removal (multiplication by the hole) that lowers the score most; removals
  accumulate. It stops when the score falls to ``stop = 0.01`` or after ``n = 20`` rounds.
- **Plus**: from a (near) black image (the authors' ``uint8(2 * rand)``, values 0 or 1), each
  round tries adding back, at every grid position, the face windowed by ``G`` (Mery's screen
  blend ``255 - (255 - current)(255 - face * G) / 255``), and keeps the addition that raises the
  score most, while the face's own score exceeds the current one by more than ``stop``.
- Each procedure gives ``H0`` (the score change of every position in the first round) and
  ``H1`` (the change at the position chosen in each round). The MinPlus heatmap is
  ``(H0minus + H0plus + H1minus + H1plus) / 4``, correlated with the same Gaussian (``nh``,
  ``nh / 8.5``, reflect-101 borders as ``cv2.filter2D``) and min-max normalised.

Both faces are explained, each against the other's fixed embedding: ``heatmaps[0]`` perturbs
the probe, ``heatmaps[1]`` the gallery (the authors explain one image of the pair; running it
both ways gives the gallery a map of the same meaning).

Departures from the authors' code, all documented in ``notes``: images stay float (no uint8
rounding of perturbed images); ``H0`` is zero off the grid (the authors' Plus ``H0`` carried a
constant ``-score`` there, which min-max normalisation mostly, but not fully, removes).

**Negative decisions** (an xfr extension; the authors explain positive decisions only, paper
Sec. 4): the same procedures with the objective reversed. Minus removes, each round, the hole
whose removal *raises* the similarity most (the regions that make the two faces differ), until
the verifier would accept the pair, no removal raises it any more, or ``n`` rounds; Plus
rebuilds the face from black adding the region that *lowers* the similarity most, while the
rebuilt image is still more similar to the other face than the whole face is and some addition
still lowers it. The maps then show the dissimilar regions. With
``explain_negative=False`` a negative decision gets ``heatmaps=None`` and
``notes["unsupported"]``.

Cost: per pair, at most ``2 images x 2 procedures x n rounds x 36 positions`` verifier calls
(2880 with the defaults); every round of every procedure of every pair is scored in the same
batched verifier calls (``batch_size`` images each).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

import numpy as np
import torch

from xfr.interfaces.verifier import Verifier
from xfr.interfaces.vocabulary import GAUSSIAN_SIGMA_DIVISOR, is_positive
from xfr_plugins.explainers.options import MinPlusOptions
from xfr_plugins.explainers.perturbation import (
    CountingEmbedder,
    PairContext,
    PairResult,
    PerturbationExplainer,
    Source,
    gaussian_kernel,
    make_progress,
    minmax,
    scores,
    smooth,
    stream_embeddings,
)

__all__ = ["MinPlusExplainer", "gaussian_holes", "grid_positions"]

SIDES = ("probe", "gallery")


def grid_positions(size: int, step: int) -> list[tuple[int, int]]:
    """Hole centres ``(i, j)`` for ``i, j`` in ``range(step, size, step)`` (Mery's loops)."""
    return [(i, j) for i in range(step, size, step) for j in range(step, size, step)]


def gaussian_holes(
    size: int, positions: list[tuple[int, int]], nh: int, sigma: float
) -> np.ndarray:
    """``(P, size, size)`` hole masks ``1 - G`` centred on ``positions``, 1 elsewhere.

    Mery's ``DefineGaussianMask``: the ``nh x nh`` kernel is pasted at ``(i, j)`` in an image
    padded by ``nh`` and the result cropped from ``round(nh / 2)``.
    """
    h = 1.0 - gaussian_kernel(nh, sigma)
    nh2 = round(nh / 2)
    out = np.empty((len(positions), size, size), np.float64)
    for k, (i, j) in enumerate(positions):
        pad = np.ones((size + nh, size + nh))
        pad[i : i + nh, j : j + nh] = h
        out[k] = pad[nh2 : nh2 + size, nh2 : nh2 + size]
    return out


@dataclass
class _Procedure:
    """One Minus or Plus run on one image of one pair."""

    pair: PairContext
    side: int
    kind: str  # "minus" | "plus"
    sign: float  # +1: similarity (positive decision), -1: reversed (negative decision)
    current: torch.Tensor
    score: float
    full: float
    h0: np.ndarray
    h1: np.ndarray
    start_score: float = 0.0
    rounds: int = 0
    calls: int = 0
    active: bool = True
    stop: str = ""
    chosen: list[list[int]] = field(default_factory=list)
    candidates: np.ndarray | None = None


def _current(q: _Procedure, start: int, stop: int) -> torch.Tensor:
    """A procedure's current image as a batch of one (the score a Plus run starts from)."""
    return q.current[None]


def _select(build: Callable[[_Procedure, np.ndarray], torch.Tensor], q: _Procedure,
            idx: np.ndarray, start: int, stop: int) -> torch.Tensor:
    """Images ``start..stop-1`` of one round of ``q``: its candidates ``idx[start:stop]``."""
    return build(q, idx[start:stop])


class MinPlusExplainer(PerturbationExplainer):
    """MinPlus saliency for face verification [Me22]; see the module docstring."""

    name = "minplus"
    #: Weights of (H0minus, H0plus, H1minus, H1plus) in the map (before smoothing).
    COMPONENTS: ClassVar[tuple[float, float, float, float]] = (0.25, 0.25, 0.25, 0.25)
    #: The options, declared once (:mod:`xfr_plugins.explainers.options`).
    Options: ClassVar[type[MinPlusOptions]] = MinPlusOptions

    # ------------------------------------------------------------------ the procedures
    def _explain(
        self,
        verifier: Verifier,
        embedder: CountingEmbedder,
        pairs: list[PairContext],
        opts: dict[str, Any],
    ) -> list[PairResult]:
        size = int(pairs[0].probe.shape[-1])
        positions = grid_positions(size, opts["step"])
        if not positions:
            raise ValueError(
                f"{self.name}: step {opts['step']} leaves no hole centre on a {size}x{size} image"
            )
        nh = int(opts["hole_size"])
        sigma = float(opts["hole_sigma"] or nh / GAUSSIAN_SIGMA_DIVISOR)
        ref = pairs[0].probe
        holes = torch.as_tensor(gaussian_holes(size, positions, nh, sigma), dtype=ref.dtype)
        holes = holes.to(ref.device)
        windows = 1.0 - holes
        pos = np.asarray(positions)
        thr = float(verifier.threshold)
        stop = float(opts["stop"])

        procs: list[_Procedure] = []
        for p in pairs:
            sign = 1.0 if p.decision == "positive" else -1.0
            for side in (0, 1):
                img = p.image(side)
                full = p.score  # the dot product is symmetric
                for kind in ("minus", "plus"):
                    if kind == "minus":
                        cur = img
                    else:
                        rng = np.random.default_rng([int(opts["seed"]), side])
                        if opts["plus_start"] == "noise":
                            noise = rng.integers(0, 2, size=(size, size, 3)).transpose(2, 0, 1)
                            cur = torch.as_tensor(noise, dtype=img.dtype, device=img.device)
                        else:
                            cur = torch.zeros_like(img)
                    procs.append(
                        _Procedure(
                            pair=p, side=side, kind=kind, sign=sign, current=cur,
                            score=full, full=full,
                            h0=np.zeros((size, size)), h1=np.zeros((size, size)),
                        )
                    )

        # Plus starts: one batched call for all of them.
        plus = [q for q in procs if q.kind == "plus"]
        start_sources = [Source(1, partial(_current, q)) for q in plus]
        for k, _a, _b, e in stream_embeddings(embedder, start_sources):
            q = plus[k]
            q.score = float(scores(e, q.pair.target(q.side))[0])
            q.calls += 1
        for q in procs:
            q.start_score = q.score
            self._check_stop(q, verifier, None, thr, stop, opts["iterations"], before=True)

        def build(q: _Procedure, idx: np.ndarray) -> torch.Tensor:
            t = torch.as_tensor(idx, device=holes.device)
            if q.kind == "minus":
                return q.current[None] * holes[t][:, None]
            face = q.pair.image(q.side)
            added = 255.0 - face[None] * windows[t][:, None]
            return 255.0 - (255.0 - q.current)[None] * added / 255.0

        bar = make_progress(opts["progress"], opts["iterations"], f"{self.name} rounds")
        try:
            while True:
                active = [q for q in procs if q.active]
                if not active:
                    break
                sources: list[Source] = []
                owners: list[_Procedure] = []
                for q in active:
                    if q.kind == "minus":
                        alive = (q.current[:, pos[:, 0], pos[:, 1]].sum(0) > 0).cpu().numpy()
                        idx = np.flatnonzero(alive)
                        if idx.size == 0:
                            q.active, q.stop = False, "nothing left to remove"
                            continue
                    else:
                        idx = np.arange(len(positions))
                    q.candidates = idx
                    sources.append(
                        Source(len(idx), partial(_select, build, q, idx))
                    )
                    owners.append(q)
                pieces: list[list[torch.Tensor]] = [[] for _ in owners]
                for k, _a, _b, e in stream_embeddings(embedder, sources):
                    pieces[k].append(e)
                for q, parts in zip(owners, pieces, strict=True):
                    self._advance(q, torch.cat(parts), pos, build, verifier, thr, stop, opts)
                bar.update(1)
        finally:
            bar.close()

        results: list[PairResult] = []
        for p in pairs:
            mine = [q for q in procs if q.pair is p]
            maps, empty = [], []
            for side in (0, 1):
                by = {q.kind: q for q in mine if q.side == side}
                w = self.COMPONENTS
                raw = (
                    w[0] * by["minus"].h0 + w[1] * by["plus"].h0
                    + w[2] * by["minus"].h1 + w[3] * by["plus"].h1
                )
                if not np.any(raw):
                    empty.append(SIDES[side])
                s_size = int(opts["smooth_size"] or nh)
                s_sigma = float(opts["smooth_sigma"] or s_size / GAUSSIAN_SIGMA_DIVISOR)
                maps.append(minmax(smooth(raw, s_size, s_sigma)))
            notes: dict[str, Any] = {
                "verifier_calls": sum(q.calls for q in mine),
                "grid_positions": len(positions),
                "hole_sigma": sigma,
                "procedures": {
                    SIDES[side]: {
                        q.kind: {
                            "rounds": q.rounds,
                            "stop": q.stop,
                            "score_start": q.start_score,
                            "score_end": q.score,
                            "chosen": q.chosen,
                            "verifier_calls": q.calls,
                        }
                        for q in mine
                        if q.side == side
                    }
                    for side in (0, 1)
                },
                "components": self._components_text(),
                "heatmaps": "probe perturbed against the gallery's embedding, and vice versa",
                "departures": "float images (no uint8 rounding); H0 is zero off the grid",
            }
            if empty:
                notes["empty_maps"] = empty
            if p.decision == "positive":
                notes["explains"] = "similarity: regions whose removal lowers the score most"
            else:
                notes["explains"] = (
                    "extension for a negative decision: reversed objective; Minus removes the "
                    "regions whose removal raises the similarity (until the verifier would "
                    "accept), Plus adds the regions that lower it; the map shows dissimilar "
                    "regions"
                )
            results.append(PairResult(np.stack(maps).astype(np.float32), notes))
        return results

    def _components_text(self) -> str:
        return "(H0minus + H0plus + H1minus + H1plus) / 4, Gaussian-smoothed, min-max"

    @staticmethod
    def _advance(
        q: _Procedure,
        emb: torch.Tensor,
        pos: np.ndarray,
        build: Any,
        verifier: Verifier,
        thr: float,
        stop: float,
        opts: dict[str, Any],
    ) -> None:
        """One round of ``q`` given the embeddings of its candidates."""
        assert q.candidates is not None
        idx = q.candidates
        q.calls += len(idx)
        s = scores(emb, q.pair.target(q.side))
        f, f_prev = q.sign * s, q.sign * q.score
        if q.kind == "minus":
            k = int(np.argmin(f))  # the removal that lowers the objective most (first on ties)
            change = f_prev - f
        else:
            k = int(np.argmax(f))  # the addition that raises it most
            change = f - f_prev
        rows, cols = pos[idx, 0], pos[idx, 1]
        if q.rounds == 0:
            q.h0[rows, cols] = change
        if q.sign < 0 and not change[k] > 0:
            # extension for negative decisions: no candidate moves the similarity the explained
            # way any more; the round is not applied
            q.active = False
            q.stop = "no candidate moves the similarity the explained way"
            return
        q.h1[rows[k], cols[k]] = change[k]
        q.chosen.append([int(rows[k]), int(cols[k])])
        q.current = build(q, idx[k : k + 1])[0]
        q.score = float(s[k])
        q.rounds += 1
        MinPlusExplainer._check_stop(q, verifier, emb[k], thr, stop, opts["iterations"])

    @staticmethod
    def _check_stop(
        q: _Procedure,
        verifier: Verifier,
        emb: torch.Tensor | None,
        thr: float,
        stop: float,
        iterations: int,
        *,
        before: bool = False,
    ) -> None:
        """Mery's loop conditions (``while sct > th`` / ``while scA - sct > th``), reversed for
        a negative decision."""
        if q.kind == "minus":
            if q.sign > 0:
                if not q.score > stop:
                    q.active, q.stop = False, f"score {q.score:.4f} <= stop {stop:g}"
                    return
            elif emb is not None:
                with torch.no_grad():
                    d = verifier.distance(emb[None], q.pair.target(q.side)[None])
                d_val = float(torch.as_tensor(d).reshape(-1)[0])
                if is_positive(d_val, thr):
                    q.active = False
                    q.stop = f"decision flipped to positive (distance {d_val:.4f} < {thr:g})"
                    return
        else:
            gap = q.sign * (q.full - q.score)
            if not gap > stop:
                q.active = False
                q.stop = f"gap to the face's own score {gap:.4f} <= stop {stop:g}"
                if before:
                    q.stop += " before the first round"
                return
        if not before and q.rounds >= iterations:
            q.active, q.stop = False, f"{iterations} rounds"
