"""xSSAB: similarity score argument backpropagation (Huber, Luu, Terhörst & Damer, "Efficient
Explainable Face Verification based on Similarity Score Argument Backpropagation", WACV 2024,
arXiv:2304.13409; the authors' code: github.com/marcohuber/xSSAB).

The cosine similarity of two L2-normalised embeddings is a sum of per-dimension *arguments*,
``cos(x, x') = sum_m e_m(x) e_m(x')``. xSSAB splits them, with the decision threshold as the
yardstick, into those that argue for a match and those that argue against it, and
backpropagates each group to the pixels of one face while the other face's embedding stays
fixed. As in the authors' code (``methodology/gradient_calculator.py``):

- ``bound = t / D``: the cosine threshold ``t`` shared evenly over the ``D`` dimensions. xfr's
  verifiers decide on the squared L2 distance of unit embeddings, ``d = 2 - 2 cos``, so
  ``t = 1 - threshold / 2`` (checked on every pair; ``bound=<number>`` sets it directly for a
  verifier with another distance).
- Positive arguments ``P = {m : e_m(x) e_m(x') >= bound}``, negative arguments the rest. Both
  sets come from the unperturbed pair and are the same for both faces (the product is
  symmetric).
- ``S+(x) = sum_{m in P} e_m(x) e_m(x')`` and ``S-(x) = sum_{m not in P} e_m(x) e_m(x')``, with
  ``e(x')`` fixed; their gradients with respect to the probe's pixels give the probe's maps,
  and the same with the roles swapped the gallery's (the authors run every pair both ways).
- A map is the mean over the RGB channels of the absolute gradient (``load_gradient_mean``):
  the **similarity** map from ``S+``, the **dissimilarity** map from ``S-``; the authors'
  combined map is similarity - dissimilarity.

``Explanation.heatmaps`` is the similarity map of each face (min-max normalised) for a
positive decision and the dissimilarity map for a negative one (the arguments that support the
decision); ``extras["similarity"]`` and ``extras["dissimilarity"]`` keep both raw maps
``(2, H, W)`` (probe, gallery), whatever the decision.

Gradients: a verifier whose ``embed`` is differentiable is used as it is; a ViT verifier whose
``embed`` runs without autograd (xfr's ``face-vit`` runs in inference mode) is differentiated
through the same layers opened by the attention generators
(:func:`xfr_plugins.attention.tracing.vit_features`, image + mirror image when the verifier
embeds with ``flip``), after checking that they reproduce ``embed``. Anything else is refused
before any gradient is computed.

Cost per pair: the two embeddings of the decision, one forward of both faces with autograd and
two backward passes per face (``S+`` and ``S-``): 8 model passes (14 with ``flip``: every
forward and backward pass carries the mirror image too).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from xfr.errors import OptionError, OptionTypeError
from xfr.interfaces.verifier import Verifier
from xfr_plugins.explainers.options import XSSABOptions
from xfr_plugins.explainers.perturbation import (
    CountingEmbedder,
    PairContext,
    PairResult,
    minmax,
)
from xfr_plugins.explainers.similarity import (
    SimilarityExplainer,
    SimilarityMap,
    decision_map,
    similarity_result,
)

__all__ = ["XSSABExplainer", "differentiable_embeddings"]

#: How far the differentiated embeddings may stray from ``verifier.embed`` (float32 rounding).
EMBED_TOLERANCE = 1e-3
#: What each map shows (``notes["explains"]``).
EXPLAINS: dict[SimilarityMap, str] = {
    "similarity": "similarity map: |d S+ / d pixels|, S+ = the arguments (embedding dimensions) "
                  "that support a match",
    "dissimilarity": "dissimilarity map: |d S- / d pixels|, S- = the arguments (embedding "
                     "dimensions) that oppose a match",
}


def differentiable_embeddings(verifier: Any, images: torch.Tensor) -> tuple[
    torch.Tensor, torch.Tensor, str, int
]:
    """``(leaf, embeddings, path, forwards)``: ``images`` as a leaf that requires grad (on the
    model's device), their L2-normalised embeddings as a function of it, which path computed
    them (``"embed"``: the verifier's own; ``"vit"``: the ViT's layers) and the images pushed
    through the model. Call with grad enabled and outside inference mode."""
    from xfr_plugins.attention.tracing import (
        check_vit_verifier,
        move_to_model,
        patch_embed_in_eval,
        vit_features,
    )

    try:
        backbone = check_vit_verifier(verifier)
    except TypeError:
        backbone = None
    if backbone is None:
        leaf = images.detach().clone().requires_grad_(True)
        out = verifier.embed(leaf)
        if not isinstance(out, torch.Tensor) or out.grad_fn is None:
            raise OptionTypeError(
                f"xssab needs the gradient of the verifier's embedding: "
                f"{getattr(verifier, 'name', type(verifier).__name__)!r} embeds without "
                "autograd and has no ViT backbone xfr can open; use corrrise (any verifier)")
        return leaf, F.normalize(out, dim=-1), "embed", int(images.shape[0])
    leaf = move_to_model(verifier, images.detach()).clone().requires_grad_(True)
    flip = bool(getattr(verifier, "flip", False))
    with patch_embed_in_eval(backbone):
        e = F.normalize(vit_features(verifier, leaf), dim=-1)
        if flip:  # the verifier's embedding of image + mirror image
            e = F.normalize(e + F.normalize(vit_features(verifier, leaf.flip(-1)), dim=-1),
                            dim=-1)
    return leaf, e, "vit", int(images.shape[0]) * (2 if flip else 1)


class XSSABExplainer(SimilarityExplainer):
    """xSSAB similarity and dissimilarity maps; see the module docstring. Options:
    :class:`~xfr_plugins.explainers.options.XSSABOptions`."""

    name = "xssab"
    Options: ClassVar[type[XSSABOptions]] = XSSABOptions

    def _bound(self, verifier: Verifier, pairs: list[PairContext], dim: int,
               opts: dict[str, Any]) -> float:
        if opts["bound"] != "threshold":
            return float(opts["bound"])
        for p in pairs:
            if abs(p.distance - (2.0 - 2.0 * p.score)) > EMBED_TOLERANCE:
                raise OptionError(
                    f"xssab: the verifier's distance ({p.distance:.4f}) is not the squared L2 "
                    f"distance of its unit embeddings (2 - 2 cos = {2 - 2 * p.score:.4f}), so "
                    "its threshold is not a cosine; pass bound=<number>")
        return (1.0 - float(verifier.threshold) / 2.0) / dim

    def _explain(
        self,
        verifier: Verifier,
        embedder: CountingEmbedder,
        pairs: list[PairContext],
        opts: dict[str, Any],
    ) -> list[PairResult]:
        dim = int(pairs[0].emb_probe.shape[0])
        bound = self._bound(verifier, pairs, dim, opts)
        results = []
        step = int(opts["batch_size"])
        for c in range(0, len(pairs), step):
            results += self._chunk(verifier, pairs[c : c + step], bound)
        return results

    def _chunk(self, verifier: Verifier, pairs: list[PairContext],
               bound: float) -> list[PairResult]:
        b = len(pairs)
        images = torch.stack([p.probe for p in pairs] + [p.gallery for p in pairs])
        own = torch.stack([p.emb_probe for p in pairs] + [p.emb_gallery for p in pairs])
        other = torch.stack([p.emb_gallery for p in pairs] + [p.emb_probe for p in pairs])
        with torch.inference_mode(False), torch.enable_grad():
            leaf, e, path, forwards = differentiable_embeddings(verifier, images)
            drift = float((e.detach().to(own) - own).abs().max())
            if drift > EMBED_TOLERANCE:
                raise OptionTypeError(
                    f"xssab: the differentiable forward of "
                    f"{getattr(verifier, 'name', type(verifier).__name__)!r} does not "
                    f"reproduce its embed (largest difference {drift:.2g}); use corrrise")
            ref = other.detach().to(e)
            positive = (own.to(ref) * ref) >= bound  # the arguments, from the unperturbed pair
            terms = e * ref
            s_plus = (terms * positive).sum(-1)
            s_minus = (terms * ~positive).sum(-1)
            (g_plus,) = torch.autograd.grad(s_plus.sum(), leaf, retain_graph=True)
            (g_minus,) = torch.autograd.grad(s_minus.sum(), leaf)
        sim = g_plus.abs().mean(1).to("cpu", torch.float64).numpy()
        dis = g_minus.abs().mean(1).to("cpu", torch.float64).numpy()
        n_pos = positive.sum(-1).cpu().numpy()
        sp, sm = s_plus.detach().cpu().numpy(), s_minus.detach().cpu().numpy()
        out = []
        for i, p in enumerate(pairs):
            maps = {
                "similarity": np.stack([sim[i], sim[b + i]]).astype(np.float32),
                "dissimilarity": np.stack([dis[i], dis[b + i]]).astype(np.float32),
            }
            which = decision_map(p.decision)
            heatmaps = np.stack([minmax(m) for m in maps[which]])
            out.append(similarity_result(p.decision, heatmaps, {
                "bound": bound,
                "arguments": {"similarity": int(n_pos[i]),
                              "dissimilarity": int(positive.shape[1] - n_pos[i])},
                "argument_scores": {"similarity": float(sp[i]), "dissimilarity": float(sm[i])},
                "gradient_path": path,
                # the differentiated forward (both faces) + two backward passes per face
                "model_passes": forwards // b + 2 * (forwards // b),
            }, maps, EXPLAINS))
        return out
