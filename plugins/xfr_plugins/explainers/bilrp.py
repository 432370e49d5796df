"""BiLRP: second-order relevance of a similarity (Eberle, Büttner, Kräutli, Müller, Valleriani &
Montavon, "Building and Interpreting Deep Similarity Models", IEEE TPAMI 44(3), 2022,
arXiv:2003.05431; the authors' code: github.com/oeberle/BiLRP_explain_similarity).

A dot-product similarity ``s(x, x') = <phi(x), phi(x')> = sum_m phi_m(x) phi_m(x')`` is explained
as interactions between the regions of the two inputs:

    R_{ii'} = sum_m R_i^(m)(x) R_{i'}^(m)(x')

where ``R^(m)(x)`` is the LRP relevance of the embedding coordinate ``phi_m(x)``. If every
``R^(m)`` conserves its coordinate (``sum_i R_i^(m)(x) = phi_m(x)``), the interactions add up to
the similarity itself.

As xfr implements it on its ViTs:

- ``phi(x) = u(x)``, the L2-normalised CLS features (the embedding), so ``s`` is the cosine
  similarity the decision is made on.
- Each ``R^(m)`` starts at the CLS features with the contribution of each feature to the
  coordinate (the LRP-0 rule of a linear read-out, as the authors' code treats its projection
  layer): for ``phi_m = <u, p_m>``, the relevance ``u * p_m``; for the plain coordinates
  (``p_m`` the m-th unit vector) that is ``u_m`` on feature ``m``. It then goes through xfr's
  own LRP of the blocks (:func:`xfr_plugins.attention.relevance.propagate_features`: the
  alpha-beta rule with ``alpha`` (0.5, xfr's default for its LRP generators), the conserving
  residual and matrix-product rules of docs/method.md, "LRP rules"), down to the tokens entering
  block 0; summed over channels, ``R_i^(m)`` is the relevance of patch token ``i``.
- ``R_{ii'}`` over the ``14 x 14`` patch tokens of both faces is ``extras["interactions"]``
  ``(L, L)`` (probe token ``i``, gallery token ``i'``, row-major over the token grid,
  ``notes["grid"]``). The relevance that stays on the CLS token (and so is no region's) is
  left out; ``notes`` reports how much of the similarity the patch interactions hold.
- Per-face heatmaps are the marginals ``sum_{i'} R_{ii'}`` (probe) and ``sum_i R_{ii'}``
  (gallery), upsampled to the image like the attention maps (bilinear, min-max): for a positive
  decision the regions that add to the similarity score highest, for a negative decision the
  map is taken of ``-R`` (the regions that lower it score highest).
- :func:`render_links` draws the strongest probe-gallery token links.

Cost: one LRP pass per coordinate and face: ``2 D`` relevance passes (``D = 128`` on the bundled
model: 256) + per face one traced forward and one recomputation of the activations per chunk of
``batch_size`` coordinates (all coordinates of one face share one image's activations). The
authors' remedy for large embeddings is a random projection to fewer coordinates (their code
projects the feature maps to 100 dimensions, which approximately keeps dot products,
Johnson-Lindenstrauss): ``dims=K`` explains ``<P u(x), P u(x')>`` with ``P`` a seeded
``K x D`` Gaussian matrix of variance ``1/K`` (so ``E[P^T P] = I``), ``2 K`` relevance passes;
``notes["projected_similarity"]`` says how close it came. ``dims=None`` (default) is exact.

The relevance is computed in a float64 copy of the verifier (``precision="float64"``, as xfr's
LRP generators do: in float32 the relevance of some faces is rounding noise; docs/method.md,
"Precision").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F

from xfr.errors import OptionError, OptionTypeError
from xfr.explanation import Explanation
from xfr.interfaces.verifier import Verifier
from xfr.options import Options, option
from xfr_plugins.explainers.options import BiLRPOptions
from xfr_plugins.explainers.perturbation import (
    CountingEmbedder,
    PairContext,
    PairResult,
    check_verifier,
)
from xfr_plugins.explainers.similarity import (
    SimilarityExplainer,
    SimilarityMap,
    decision_map,
    similarity_result,
)

__all__ = ["BiLRPExplainer", "render_links", "strongest_links"]

#: What each map shows (``notes["explains"]``).
EXPLAINS: dict[SimilarityMap, str] = {
    "similarity": "marginals of the probe-gallery token interactions R_ii' (extras"
                  "['interactions']): regions that add to the similarity",
    "dissimilarity": "marginals of -R_ii': regions whose interactions lower the similarity",
}


class BiLRPExplainer(SimilarityExplainer):
    """BiLRP token interactions and their per-face marginals; see the module docstring.
    Options: :class:`~xfr_plugins.explainers.options.BiLRPOptions`."""

    name = "bilrp"
    Options: ClassVar[type[BiLRPOptions]] = BiLRPOptions

    def check_verifier(self, verifier: Any) -> None:
        """:class:`~xfr.errors.OptionTypeError` unless ``verifier`` is a ViT verifier."""
        from xfr_plugins.attention.tracing import check_vit_verifier

        check_verifier(verifier)
        try:
            check_vit_verifier(verifier)
        except TypeError as exc:
            raise OptionTypeError(
                f"bilrp needs a ViT verifier xfr can open (its LRP runs through the blocks): "
                f"{exc}; use xssab or corrrise") from None

    def _projection(self, dim: int, opts: dict[str, Any]) -> np.ndarray:
        if opts["dims"] is None:
            return np.eye(dim)
        k = int(opts["dims"])
        rng = np.random.default_rng(int(opts["seed"]))
        return rng.standard_normal((k, dim)) / np.sqrt(k)

    def _explain(
        self,
        verifier: Verifier,
        embedder: CountingEmbedder,
        pairs: list[PairContext],
        opts: dict[str, Any],
    ) -> list[PairResult]:
        from xfr_plugins.attention.base import float64_twin
        from xfr_plugins.attention.maps import to_image_maps
        from xfr_plugins.attention.tracing import move_to_model, patch_embed_in_eval

        size = (int(pairs[0].probe.shape[-2]), int(pairs[0].probe.shape[-1]))
        results = []
        with torch.inference_mode(False):
            model = float64_twin(verifier) if opts["precision"] == "float64" else verifier
            grid = (int(model.grid_size[0]), int(model.grid_size[1]))
            with patch_embed_in_eval(model.backbone):
                for p in pairs:
                    faces = move_to_model(model, torch.stack([p.probe, p.gallery]))
                    rel, u, chunks = [], [], 0
                    for face in faces:
                        r, unit, c = self._relevance(model, face[None], opts)
                        rel.append(r)
                        u.append(unit)
                        chunks += c
                    results.append(self._pair(p, rel, u, grid, size, chunks, opts,
                                              to_image_maps))
        return results

    def _relevance(self, model: Any, face: torch.Tensor, opts: dict[str, Any]) -> tuple[
        np.ndarray, np.ndarray, int
    ]:
        """``(R (K, T), u (D,), chunks)``: each coordinate's relevance of the tokens entering
        block 0 (channels summed) and the unit embedding of one face."""
        from xfr_plugins.attention.relevance import propagate_features
        from xfr_plugins.attention.tracing import run_vit

        trace = run_vit(model, face.clone())
        u = F.normalize(trace.features, dim=-1)[0]
        proj = torch.as_tensor(self._projection(int(u.shape[0]), opts)).to(u)
        step = int(opts["batch_size"])
        parts, chunks = [], 0
        for a in range(0, proj.shape[0], step):
            start = u[None] * proj[a : a + step]  # LRP-0 of the read-out <u, p_m>
            tokens, _ = propagate_features(model.backbone, trace, start,
                                           alpha=float(opts["alpha"]))
            parts.append(tokens.sum(-1))
            chunks += 1
        rel = torch.cat(parts).to("cpu", torch.float64).numpy()
        return rel, u.to("cpu", torch.float64).numpy(), chunks

    def _pair(self, p: PairContext, rel: list[np.ndarray], u: list[np.ndarray],
              grid: tuple[int, int], size: tuple[int, int], chunks: int, opts: dict[str, Any],
              to_image_maps: Any) -> PairResult:
        tokens = grid[0] * grid[1]
        prefix = rel[0].shape[1] - tokens
        a, b = rel[0][:, prefix:], rel[1][:, prefix:]  # (K, L): patch tokens
        inter = a.T @ b  # R_{ii'} = sum_m R_i^(m)(x) R_i'^(m)(x')
        proj = self._projection(u[0].shape[0], opts)
        k = proj.shape[0]
        sign = 1.0 if decision_map(p.decision) == "similarity" else -1.0
        marginals = torch.as_tensor(np.stack([inter.sum(1), inter.sum(0)]) * sign)
        heatmaps = to_image_maps(marginals, grid, size).numpy()
        cosine = float(u[0] @ u[1])
        notes: dict[str, Any] = {
            "dims": k,
            "projection": "identity (every coordinate)" if opts["dims"] is None else
                          f"Gaussian {k} x {proj.shape[1]}, variance 1/{k}, seed {opts['seed']}",
            "grid": list(grid),
            "cosine": cosine,
            "projected_similarity": float((proj @ u[0]) @ (proj @ u[1])),
            "relevance_total": float(rel[0].sum(1) @ rel[1].sum(1)),
            "patch_total": float(inter.sum()),
            "alpha": float(opts["alpha"]),
            "precision": opts["precision"],
            # forward: one traced forward per face + one recomputation per chunk; backward: one
            # relevance pass per coordinate and face
            "passes": {"forward": 4 + chunks, "relevance": 2 * k},
            "model_passes": 2 + chunks + 2 * k,
        }
        return similarity_result(p.decision, heatmaps.astype(np.float32), notes,
                                 {"interactions": inter.astype(np.float32)}, EXPLAINS)


@dataclass(frozen=True)
class LinkOptions(Options):
    """The arguments of :func:`strongest_links` (checked as plugin options are)."""

    owner: ClassVar[str] = "strongest_links"

    k: int = option(20, help="links", low=1)
    pool: int = option(1, help="side of the token cells pooled into one", low=1)
    sign: Literal["both", "positive", "negative"] = option("both", help="which links")


def strongest_links(e: Explanation, k: int = 20, *, pool: int = 1,
                    sign: str = "both") -> list[tuple[int, int, float]]:
    """The ``k`` strongest probe-gallery links of a BiLRP explanation: ``(probe cell, gallery
    cell, R)`` with cells row-major on the token grid pooled ``pool x pool`` (sums of
    ``R_{ii'}`` over the tokens of each cell), strongest ``|R|`` first; ``sign="positive"`` or
    ``"negative"`` keeps one sign."""
    if "interactions" not in e.extras or "grid" not in e.notes:
        raise OptionError("strongest_links needs a BiLRP explanation (extras['interactions'] "
                          "and notes['grid'])")
    LinkOptions.parse({"k": k, "pool": pool, "sign": sign})
    rows, cols = (int(g) for g in e.notes["grid"])
    if rows % pool or cols % pool:
        raise OptionError(f"pool {pool} does not divide the {rows}x{cols} token grid")
    r, c = rows // pool, cols // pool
    inter = np.asarray(e.extras["interactions"], np.float64).reshape(r, pool, c, pool,
                                                                     r, pool, c, pool)
    pooled = inter.sum(axis=(1, 3, 5, 7)).reshape(r * c, r * c)
    flat = pooled.ravel()
    if sign == "positive":
        order = np.argsort(-flat)
        order = order[flat[order] > 0]
    elif sign == "negative":
        order = np.argsort(flat)
        order = order[flat[order] < 0]
    else:
        order = np.argsort(-np.abs(flat))
    return [(int(i // (r * c)), int(i % (r * c)), float(flat[i])) for i in order[:k]]


def render_links(e: Explanation, path: str | Path, k: int = 20, *, pool: int = 1,
                 sign: str = "both", dpi: int = 110) -> Path:
    """Draw the probe (left) and the gallery (right) with the ``k`` strongest BiLRP links
    (:func:`strongest_links`) as lines between the centres of their cells: red where the pair
    adds to the similarity, blue where it lowers it, width and opacity by strength. Writes a
    PNG to ``path`` and returns it."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    if e.faces is None:
        raise OptionError("the explanation has no faces to draw (Explanation.faces is None)")
    links = strongest_links(e, k, pool=pool, sign=sign)
    rows, cols = (int(g) // pool for g in e.notes["grid"])
    probe, gallery = e.faces[0], e.faces[1]
    h, w = probe.shape[:2]
    gap = w // 8
    canvas = np.full((h, 2 * w + gap, 3), 255, np.uint8)
    canvas[:, :w] = probe
    canvas[:, w + gap :] = gallery
    fig = Figure(figsize=(6.4, 3.2), dpi=dpi)
    ax = fig.add_axes((0.0, 0.0, 1.0, 0.88))
    ax.imshow(canvas)
    ax.set_axis_off()
    strongest = max((abs(v) for _, _, v in links), default=1.0) or 1.0

    def centre(cell: int, offset: float) -> tuple[float, float]:
        y, x = divmod(cell, cols)
        return offset + (x + 0.5) * w / cols - 0.5, (y + 0.5) * h / rows - 0.5

    for i, j, v in reversed(links):  # the strongest drawn last, on top
        (x0, y0), (x1, y1) = centre(i, 0.0), centre(j, float(w + gap))
        strength = abs(v) / strongest
        ax.plot([x0, x1], [y0, y1], color="red" if v > 0 else "blue",
                linewidth=0.5 + 2.5 * strength, alpha=0.3 + 0.7 * strength)
        ax.plot([x0, x1], [y0, y1], "o", color="white", markersize=2)
    ax.set_xlim(-0.5, canvas.shape[1] - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    fig.suptitle(f"BiLRP: {len(links)} strongest probe-gallery links ({e.decision}, distance "
                 f"{e.distance:.3f}; red adds to the similarity, blue lowers it)", fontsize=7)
    out = Path(path)
    fig.savefig(out, format="png")
    return out
