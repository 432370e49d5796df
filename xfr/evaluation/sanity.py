"""Model-randomisation sanity check of the paper's explanations (``xfr sanity``).

Adebayo et al., "Sanity Checks for Saliency Maps" (NeurIPS 2018), Sec. 3.1 ("cascading
randomization"): an explanation that still looks the same after the model's learned weights
were replaced by random ones does not explain the model. We apply it to the explainer of
Correia et al. (Sec. 3, Fig. 1): the ViT attention maps (the raw maps of the attention
generator) and the final heatmaps (Otsu masks -> mask selection -> dilation and Gaussian
smoothing, Sec. 3.1), on the same kind of face pairs as the paper's evaluation (Sec. 4).

The method, as run by :func:`run_sanity`:

1. **Pairs** (:func:`load_pairs`, :func:`align_pairs`): a pair list, optional folds, a seeded
   subset (:func:`xfr.evaluation.runner.limit_pairs`), aligned 112x112 crops (cached).
2. **Cascade** (:func:`cascade_steps`, :func:`randomised_verifier`): step 0 is the trained
   verifier; step 1 re-draws the parameters of the *top* (everything after the last block:
   the final LayerNorm and, where the model has them, ``fc_norm``/head and a classification
   head outside the backbone) together with the last block; step ``k`` also the ``k - 1``
   blocks below it, ..., step ``depth`` every block; step ``depth + 1`` also the embedding
   *stem* (patch embedding, class token, position embedding, any register tokens and
   pre-norm). Each step works on a fresh deep copy; the verifier passed in is never changed.
3. **Re-drawing** (:func:`redraw_`): each parameter tensor becomes Gaussian noise with that
   tensor's own mean and standard deviation (population std), so activations keep their
   scale and only the learned structure is destroyed. A constant tensor (std 0, e.g. an
   untrained LayerNorm gain of ones) is drawn with std :data:`CONSTANT_RELATIVE_STD` times
   its absolute mean (a gain of 1 becomes N(1, 0.1^2)), or :data:`CONSTANT_ZERO_STD` (timm's
   ViT initialisation std) when that mean is 0. The draws are seeded per tensor name
   (:func:`tensor_seed`), so a tensor random at step ``k`` is the same at every later step:
   the cascade is cumulative. Buffers (BatchNorm running statistics of a convolutional stem)
   are kept: they are statistics of activations, not learned weights.
4. **Explanations** (:func:`explain_step`): the explainer (``method``: the paper's by
   default, or any explainer that takes a ``generator`` option and returns attention maps,
   such as ``relevance``) with its defaults and the given attention generator, batched, for
   all pairs at every step: the raw attention maps ``(2, H, W)`` and the final heatmaps
   ``(2, H, W)``, or none when no mask strategy was eligible (counted).
5. **Similarity** (:func:`similarity_to_reference`): per face, the Spearman rank correlation
   over pixels and SSIM (``data_range=1``) to the trained model's map of the same face,
   averaged over the pair's two faces; mean over pairs with a bootstrap 95 % CI. The final
   heatmap is one map drawn on both faces (paper Sec. 3.2-3.3), so its two faces agree.
6. **Chance level** (:func:`chance_similarity`): the same figures between two *different*
   pairs (pair ``i`` vs pair ``i + 1 mod n``) under the trained model: how alike the maps of
   unrelated faces are anyway (aligned faces, centred heatmaps). An explanation that passes
   the check falls to this level as the model is randomised. Also the Spearman correlation
   of every map with the ``center-blob`` reference (:func:`xfr.evaluation.references.
   center_blob`): how much of a map is the "faces are centred" prior alone.

Spearman's rho is undefined for a constant map; we define it as 1 between identical maps and
0 otherwise (a constant map ranks no pixel above another), and count such maps.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xfr.data.lfw import Pair
from xfr.errors import UserError

__all__ = [
    "CONSTANT_RELATIVE_STD",
    "CONSTANT_ZERO_STD",
    "DEFAULT_GENERATORS",
    "KINDS",
    "CascadeStep",
    "SanitySettings",
    "StepMaps",
    "align_pairs",
    "below_chance",
    "cascade_steps",
    "chance_similarity",
    "explain_step",
    "load_pairs",
    "parameter_groups",
    "randomised_verifier",
    "redraw_",
    "run_sanity",
    "similarity_to_reference",
    "spearman",
    "ssim",
    "tensor_seed",
    "write_outputs",
]

DEFAULT_GENERATORS: tuple[str, ...] = ("rollout", "vit-lrp", "nograd-lrp")
#: The two kinds of map compared: the generator's attention maps and the final heatmaps.
KINDS: tuple[str, ...] = ("raw", "final")
#: A constant tensor with mean ``m != 0`` is re-drawn from N(m, (0.1 |m|)^2).
CONSTANT_RELATIVE_STD: float = 0.1
#: A constant tensor of zeros is re-drawn from N(0, 0.02^2) (timm's ViT initialisation std).
CONSTANT_ZERO_STD: float = 0.02
#: Top-level attributes of a timm ``VisionTransformer`` that form the embedding stem.
STEM_PARTS: tuple[str, ...] = ("patch_embed", "cls_token", "reg_token", "pos_embed", "norm_pre")


# -- settings ---------------------------------------------------------------------------------
@dataclass
class SanitySettings:
    """Everything that defines one sanity-check run (``xfr sanity``'s arguments)."""

    pairs: Path
    root: Path
    out: Path | None = None
    format: str = "auto"
    folds: set[int] | None = None
    limit: int | None = None
    generators: tuple[str, ...] = DEFAULT_GENERATORS
    verifier: Any = "default"
    seed: int = 0
    #: The explainer whose raw maps and final heatmaps are checked.
    method: str = "paper"
    #: Pairs per ``explain_pairs`` call.
    batch_size: int = 32
    n_boot: int = 2000
    #: Aligned-face cache folder (default ``OUT/aligned``; without ``out`` no cache).
    align_cache: Path | None = None
    progress: bool = True
    #: The command line, recorded in ``command.txt`` and ``sanity.json``.
    command: str = ""

    def validate(self) -> None:
        """Check every option (files, numbers, generator names) before any model is loaded."""
        from xfr import registry
        from xfr.data.pairs import FORMATS

        self.pairs, self.root = Path(self.pairs), Path(self.root)
        if not self.pairs.is_file():
            raise FileNotFoundError(f"no such pair list: {self.pairs}")
        if not self.root.is_dir():
            raise FileNotFoundError(f"no such image folder: {self.root}")
        if self.format not in FORMATS:
            raise ValueError(f"unknown pair-list format {self.format!r}; choose one of {FORMATS}")
        if self.folds is not None and (not self.folds or min(self.folds) < 1):
            raise ValueError(f"folds are 1-based integers like 9,10, got {sorted(self.folds)}")
        if self.limit is not None and self.limit < 2:
            raise ValueError(f"--limit must be >= 2 (the chance level compares two different "
                             f"pairs), got {self.limit}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"--seed must be an integer >= 0, got {self.seed!r}")
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.n_boot < 1:
            raise ValueError(f"--bootstrap must be >= 1, got {self.n_boot}")
        self.generators = tuple(self.generators)
        if not self.generators:
            raise ValueError("no attention generators given")
        twice = sorted({g for g in self.generators if self.generators.count(g) > 1})
        if twice:
            raise ValueError(f"generator(s) listed twice: {twice}")
        for g in self.generators:
            registry.create("attention", g)  # an unknown name fails here, listing the known
        registry.create("explainer", self.method, generator=self.generators[0])

    def to_dict(self) -> dict[str, Any]:
        return {
            "pairs": str(self.pairs), "root": str(self.root), "format": self.format,
            "folds": sorted(self.folds) if self.folds else None, "limit": self.limit,
            "generators": list(self.generators),
            "verifier": str(self.verifier) if isinstance(self.verifier, (str, Path)) else
            getattr(self.verifier, "name", type(self.verifier).__name__),
            "seed": self.seed, "batch_size": self.batch_size, "bootstrap": self.n_boot,
            "explainer": f"{self.method} (its defaults; generator per run)",
        }


# -- 1. pairs ---------------------------------------------------------------------------------
def load_pairs(settings: SanitySettings) -> list[Pair]:
    """The pairs of the list (and folds), the seeded ``limit`` subset of them
    (:func:`xfr.evaluation.runner.limit_pairs`: genuine and impostor in turn); every image
    file must exist."""
    from xfr.data.pairs import read_pair_list, select_folds
    from xfr.evaluation.runner import limit_pairs

    pairs = select_folds(read_pair_list(settings.pairs, settings.root, settings.format),
                         settings.folds)
    pairs = [pairs[i] for i in limit_pairs(pairs, settings.limit, settings.seed)]
    if len(pairs) < 2:
        raise ValueError(f"the sanity check needs at least 2 pairs (chance level), "
                         f"got {len(pairs)}")
    missing = [str(p) for pair in pairs for p in (pair.probe, pair.gallery) if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} image file(s) of the pair list are missing "
                                f"under {settings.root}, e.g. {missing[:3]}")
    return pairs


def align_pairs(pairs: Sequence[Pair], cache: Path | None
                ) -> tuple[Any, Any, list[Pair], list[dict[str, str]]]:
    """Aligned probe and gallery crops as ``(N, 3, 112, 112)`` tensors, the pairs they belong
    to, and the pairs left out (a face that could not be aligned), with the reason."""
    from xfr.align import AlignmentCache, align
    from xfr.api import to_tensor

    store = AlignmentCache(cache) if cache is not None else None
    crops: dict[Path, np.ndarray | str] = {}
    for f in sorted({p for pair in pairs for p in (pair.probe, pair.gallery)}):
        try:
            crops[f] = store.get(f) if store is not None else align(f)
        except ValueError as exc:  # NoFaceError / ImageError: reported, never silent
            crops[f] = f"{type(exc).__name__}: {exc}"
    kept = [p for p in pairs if not isinstance(crops[p.probe], str)
            and not isinstance(crops[p.gallery], str)]
    skipped = [{"pair": f"{p.probe} | {p.gallery}",
                "reason": next(c for c in (crops[p.probe], crops[p.gallery])
                               if isinstance(c, str))}
               for p in pairs if p not in kept]
    if len(kept) < 2:
        raise ValueError(f"only {len(kept)} pair(s) could be aligned; the sanity check needs "
                         f"at least 2 ({len(skipped)} skipped: {skipped[:2]})")
    probes = to_tensor(np.stack([crops[p.probe] for p in kept]))
    galleries = to_tensor(np.stack([crops[p.gallery] for p in kept]))
    return probes, galleries, kept, skipped


# -- 2. the cascade ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CascadeStep:
    """One step of the cascade: which parameter groups are random (cumulative)."""

    index: int
    #: What is random, in words (``"top + blocks 5-6"``).
    label: str
    #: Parameter groups random at this step: ``"top"``, ``"block N"`` (1-based), ``"stem"``.
    groups: tuple[str, ...]


def _root_module(verifier: Any) -> Any:
    """The module whose parameters make the embedding: the verifier's ``model`` when it holds
    the backbone (so a head outside the backbone is included), else the backbone."""
    import torch

    backbone = getattr(verifier, "backbone", None)
    blocks = getattr(backbone, "blocks", None)
    if not isinstance(backbone, torch.nn.Module) or not isinstance(blocks, torch.nn.Sequential) \
            or len(blocks) == 0:
        raise UserError(
            f"the sanity check needs a ViT verifier with transformer blocks "
            f"(verifier.backbone.blocks); "
            f"{getattr(verifier, 'name', type(verifier).__name__)!r} has none")
    model = getattr(verifier, "model", None)
    if isinstance(model, torch.nn.Module) and any(m is backbone for m in model.modules()):
        return model
    return backbone


def parameter_groups(verifier: Any) -> dict[str, list[str]]:
    """Names of the verifier's parameters (relative to its ``model``, else its backbone) in
    the cascade's groups, top first: ``"top"`` (after the last block: final norm, heads),
    ``"block D"`` ... ``"block 1"`` (1-based) and ``"stem"`` (before the first block)."""
    root = _root_module(verifier)
    backbone = verifier.backbone
    prefix = next(name for name, m in root.named_modules() if m is backbone)
    prefix = f"{prefix}." if prefix else ""
    depth = len(backbone.blocks)
    groups: dict[str, list[str]] = {"top": []}
    groups.update({f"block {i}": [] for i in range(depth, 0, -1)})
    groups["stem"] = []
    for name, _ in root.named_parameters():
        rest = name[len(prefix):] if name.startswith(prefix) else None
        parts = rest.split(".") if rest is not None else []
        if len(parts) > 2 and parts[0] == "blocks" and parts[1].isdigit():
            groups[f"block {int(parts[1]) + 1}"].append(name)
        elif parts and parts[0] in STEM_PARTS:
            groups["stem"].append(name)
        else:
            groups["top"].append(name)
    return groups


def _block_label(blocks: list[int]) -> str:
    if not blocks:
        return ""
    lo, hi = min(blocks), max(blocks)
    return f"block {hi}" if lo == hi else f"blocks {lo}-{hi}"


def cascade_steps(verifier: Any) -> list[CascadeStep]:
    """Step 0 (the trained model), then top + last block, top + last two blocks, ..., top +
    every block, and finally also the stem: ``depth + 2`` steps (Adebayo et al. Sec. 3.1)."""
    _root_module(verifier)  # a verifier without transformer blocks fails here
    depth = len(verifier.backbone.blocks)
    steps = [CascadeStep(0, "nothing (trained model)", ())]
    for k in range(1, depth + 1):
        blocks = list(range(depth - k + 1, depth + 1))
        steps.append(CascadeStep(k, f"top + {_block_label(blocks)}",
                                 ("top", *(f"block {b}" for b in reversed(blocks)))))
    every = ("top", *(f"block {b}" for b in range(depth, 0, -1)), "stem")
    steps.append(CascadeStep(depth + 1, f"top + {_block_label(list(range(1, depth + 1)))} "
                                        "+ stem (everything)", every))
    return steps


# -- 3. re-drawing ----------------------------------------------------------------------------
def tensor_seed(seed: int, name: str) -> int:
    """The seed of one parameter tensor's draw: independent of the step and of the order."""
    return int(hashlib.sha1(f"{seed}:sanity:{name}".encode()).hexdigest()[:15], 16)


def redraw_(tensor: Any, seed: int) -> Any:
    """Replace ``tensor`` in place by Gaussian noise with its own mean and (population)
    standard deviation; constant tensors: see :data:`CONSTANT_RELATIVE_STD`,
    :data:`CONSTANT_ZERO_STD`. Returns the tensor."""
    import torch

    with torch.no_grad():
        values = tensor.detach().double()
        mean = float(values.mean())
        std = float(values.std(unbiased=False)) if values.numel() > 1 else 0.0
        if not std > 0 or not math.isfinite(std):
            std = CONSTANT_RELATIVE_STD * abs(mean) if mean != 0 else CONSTANT_ZERO_STD
        g = torch.Generator().manual_seed(seed)
        noise = torch.randn(tuple(tensor.shape), generator=g, dtype=torch.float64)
        tensor.copy_((noise * std + mean).to(device=tensor.device, dtype=tensor.dtype))
    return tensor


def randomised_verifier(verifier: Any, step: CascadeStep, seed: int = 0) -> Any:
    """A deep copy of ``verifier`` with the parameters of ``step``'s groups re-drawn
    (:func:`redraw_`, seeded per tensor by :func:`tensor_seed`); ``verifier`` is unchanged."""
    clone = copy.deepcopy(verifier)
    groups = parameter_groups(clone)
    params = dict(_root_module(clone).named_parameters())
    for group in step.groups:
        for name in groups[group]:
            redraw_(params[name], tensor_seed(seed, name))
    return clone


# -- 4. explanations --------------------------------------------------------------------------
@dataclass
class StepMaps:
    """The explainer's output for every pair at one step, for one generator."""

    #: ``(N, 2, H, W)`` attention maps (probe, gallery).
    raw: np.ndarray
    #: ``(N, 2, H, W)`` final heatmaps; NaN rows where ``has_final`` is False.
    final: np.ndarray
    has_final: np.ndarray
    decisions: list[str]
    distances: np.ndarray

    def maps(self, kind: str) -> np.ndarray:
        return self.raw if kind == "raw" else self.final

    def present(self, kind: str) -> np.ndarray:
        return np.ones(len(self.raw), bool) if kind == "raw" else self.has_final


def explain_step(verifier: Any, probes: Any, galleries: Any, generator: str,
                 batch_size: int = 32, method: str = "paper") -> StepMaps:
    """Explain every pair with the explainer ``method`` (its defaults, ``generator``): one
    ``explain_pairs`` call per batch of ``batch_size`` pairs."""
    from xfr import registry

    explainer = registry.create("explainer", method)
    out = []
    for s in range(0, probes.shape[0], batch_size):
        out += explainer.explain_pairs(verifier, probes[s:s + batch_size],
                                       galleries[s:s + batch_size], generator=generator)
    raw = np.stack([e.attention_maps for e in out]).astype(np.float32)
    has = np.array([e.heatmaps is not None for e in out])
    final = np.full_like(raw, np.nan)
    for i, e in enumerate(out):
        if e.heatmaps is not None:
            final[i] = e.heatmaps
    return StepMaps(raw, final, has, [e.decision for e in out],
                    np.array([e.distance for e in out]))


@dataclass
class StepJob:
    """Explanations of the cascade on an engine's workers (:class:`xfr.engines.Job`): an item
    is ``(step index, generator, probes, galleries)`` of one batch; each worker loads the
    verifier once and keeps the randomised copy of the step it last saw."""

    verifier: Any
    seed: int
    method: str = "paper"

    def setup(self) -> dict[str, Any]:
        from xfr.api import load_verifier

        model = load_verifier(self.verifier)
        return {"model": model, "steps": {st.index: st for st in cascade_steps(model)},
                "step": None, "v": None}

    def compute(self, state: dict[str, Any], item: tuple[int, str, Any, Any]
                ) -> tuple[StepMaps, float]:
        index, generator, probes, galleries = item
        if state["step"] != index:
            state["v"] = None  # one randomised copy at a time
            state["v"] = state["model"] if index == 0 else randomised_verifier(
                state["model"], state["steps"][index], self.seed)
            state["step"] = index
        t0 = time.perf_counter()
        maps = explain_step(state["v"], probes, galleries, generator, probes.shape[0],
                            self.method)
        return maps, time.perf_counter() - t0


def explain_steps(engine: Any, s: SanitySettings, steps: Sequence[CascadeStep], probes: Any,
                  galleries: Any) -> dict[tuple[int, str], tuple[StepMaps, float]]:
    """Every step's and generator's :class:`StepMaps` computed by ``engine`` in batches of
    ``s.batch_size`` pairs, joined in pair order, with the workers' seconds."""
    n = probes.shape[0]
    # clone(): a pickled slice would carry its whole tensor's storage
    items = [(step.index, g, probes[b:b + s.batch_size].clone(),
              galleries[b:b + s.batch_size].clone())
             for step in steps for g in s.generators for b in range(0, n, s.batch_size)]
    parts: dict[int, tuple[StepMaps, float]] = dict(
        engine.map(StepJob(s.verifier, s.seed, s.method), items))
    out: dict[tuple[int, str], tuple[StepMaps, float]] = {}
    k = 0
    for step in steps:
        for g in s.generators:
            chunk = [parts[k + j] for j in range(len(range(0, n, s.batch_size)))]
            k += len(chunk)
            maps = [m for m, _ in chunk]
            out[(step.index, g)] = (StepMaps(
                np.concatenate([m.raw for m in maps]), np.concatenate([m.final for m in maps]),
                np.concatenate([m.has_final for m in maps]),
                [d for m in maps for d in m.decisions],
                np.concatenate([m.distances for m in maps])), sum(t for _, t in chunk))
    return out


# -- 5. similarity ----------------------------------------------------------------------------
def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation over the pixels of two maps ``(H, W)``; 1 for identical
    maps, 0 when one of two different maps is constant (undefined otherwise)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if np.array_equal(a, b):
        return 1.0
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity of two maps ``(H, W)`` in [0, 1] (scikit-image, default 7x7
    window, ``data_range=1``)."""
    from skimage.metrics import structural_similarity

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if np.array_equal(a, b):
        return 1.0
    return float(structural_similarity(a, b, data_range=1.0))


def _is_constant(m: np.ndarray) -> bool:
    return bool(np.ptp(m) == 0)


def _pairwise(a: np.ndarray, b: np.ndarray, present: np.ndarray,
              metric: Callable[[np.ndarray, np.ndarray], float]) -> np.ndarray:
    """Per pair, ``metric`` averaged over the two faces; NaN where ``present`` is False."""
    out = np.full(len(a), np.nan)
    for i in np.flatnonzero(present):
        out[i] = np.mean([metric(a[i, f], b[i, f]) for f in range(a.shape[1])])
    return out


def similarity_to_reference(reference: StepMaps, maps: StepMaps,
                            ) -> dict[str, dict[str, np.ndarray]]:
    """Per kind (``raw``, ``final``): per-pair Spearman and SSIM of ``maps`` to
    ``reference`` (NaN where either has no final heatmap), plus the number of constant maps
    (whose Spearman is defined as 0)."""
    out: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        present = reference.present(kind) & maps.present(kind)
        a, b = reference.maps(kind), maps.maps(kind)
        out[kind] = {
            "spearman": _pairwise(a, b, present, spearman),
            "ssim": _pairwise(a, b, present, ssim),
            "constant": int(sum(_is_constant(b[i, f]) for i in np.flatnonzero(present)
                                for f in range(b.shape[1]))),
        }
    return out


def chance_similarity(reference: StepMaps) -> dict[str, dict[str, np.ndarray]]:
    """Per kind: Spearman and SSIM between the maps of pair ``i`` and pair ``i + 1 mod n``
    (probe vs probe, gallery vs gallery) under the trained model: the chance level."""
    shift = np.roll(np.arange(len(reference.raw)), -1)
    shifted = StepMaps(reference.raw[shift], reference.final[shift],
                       reference.has_final[shift], [reference.decisions[j] for j in shift],
                       reference.distances[shift])
    return similarity_to_reference(reference, shifted)


def blob_similarity(maps: StepMaps, blob: np.ndarray) -> dict[str, np.ndarray]:
    """Per kind: per-pair Spearman of every map with the ``center-blob`` map."""
    out = {}
    for kind in KINDS:
        m = maps.maps(kind)
        out[kind] = _pairwise(m, np.broadcast_to(blob, m.shape), maps.present(kind), spearman)
    return out


def _interval(values: np.ndarray, n_boot: int, seed: int) -> dict[str, Any]:
    """Mean of the finite per-pair values with its bootstrap 95 % CI, and how many pairs
    had no value."""
    from xfr.evaluation.bootstrap import bootstrap_ci

    values = np.asarray(values, np.float64)
    finite = values[np.isfinite(values)]
    ci = bootstrap_ci(finite, n_boot=n_boot, seed=seed).to_dict()
    return {**{k: _clean(v) for k, v in ci.items()}, "missing": int(len(values) - len(finite))}


def _clean(x: Any) -> Any:
    """NaN/inf -> None, NumPy scalars -> Python (strict JSON)."""
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def _values(a: np.ndarray) -> list[float | None]:
    return [_clean(float(x)) for x in a]


def below_chance(steps: list[dict[str, Any]], chance: dict[str, Any], kind: str,
                 metric: str = "spearman") -> int | None:
    """The first randomised step whose mean ``metric`` of ``kind`` maps is below the chance
    level's mean (``None``: never)."""
    level = chance[kind][metric]["estimate"]
    if level is None:
        return None
    for s in steps:
        value = s[kind][metric]["estimate"]
        if s["step"] > 0 and value is not None and value < level:
            return int(s["step"])
    return None


# -- the run ----------------------------------------------------------------------------------
def _accuracy(maps: StepMaps, same: np.ndarray) -> float:
    return float(np.mean((np.array(maps.decisions) == "positive") == same))


def _step_record(step: CascadeStep, sims: dict[str, dict[str, Any]],
                 blob: dict[str, np.ndarray], maps: StepMaps, reference: StepMaps,
                 same: np.ndarray, seconds: float, n_boot: int, seed: int) -> dict[str, Any]:
    rec: dict[str, Any] = {"step": step.index, "random": step.label, "groups": list(step.groups)}
    for kind in KINDS:
        rec[kind] = {
            "spearman": _interval(sims[kind]["spearman"], n_boot, seed),
            "ssim": _interval(sims[kind]["ssim"], n_boot, seed),
            "constant_maps": sims[kind]["constant"],
            "center_blob_spearman": _interval(blob[kind], n_boot, seed),
            "per_pair": {"spearman": _values(sims[kind]["spearman"]),
                         "ssim": _values(sims[kind]["ssim"]),
                         "center_blob_spearman": _values(blob[kind])},
        }
    rec["final"]["no_heatmap"] = int((~maps.has_final).sum())
    rec["accuracy"] = _accuracy(maps, same)
    rec["decisions_changed"] = int(sum(a != b for a, b in
                                       zip(maps.decisions, reference.decisions, strict=True)))
    rec["seconds"] = round(seconds, 3)
    return rec


def run_sanity(pairs: str | Path, root: str | Path, out: str | Path | None = None, *,
               format: str = "auto", folds: set[int] | None = None, limit: int | None = None,
               generators: Sequence[str] = DEFAULT_GENERATORS, verifier: Any = "default",
               seed: int = 0, batch_size: int = 32, n_boot: int = 2000,
               align_cache: str | Path | None = None, progress: bool = True,
               command: str = "", engine: Any = None, method: str = "paper"
               ) -> dict[str, Any]:
    """Run the cascading model-randomisation check (Adebayo et al. 2018, Sec. 3.1) of the
    paper's explanations (Correia et al. Sec. 3.1) on a pair list (as in its Sec. 4), and
    write ``sanity.json``, ``sanity.md``, ``sanity.png`` and ``command.txt`` into ``out``
    (when given). ``verifier`` is a name, a model folder or a verifier object, which is never
    modified. ``engine`` (:mod:`xfr.engines`; default this process) runs the explanations:
    on Ray, every (step, generator, batch) is one item (:class:`StepJob`) and the driver
    computes the similarities, so the results are the same. Returns what ``sanity.json``
    holds."""
    from tqdm import tqdm

    from xfr.api import load_verifier
    from xfr.evaluation.references import center_blob
    from xfr.evaluation.runner import model_fingerprint

    s = SanitySettings(
        pairs=Path(pairs), root=Path(root), out=None if out is None else Path(out),
        format=format, folds=set(folds) if folds else None, limit=limit,
        generators=tuple(generators), verifier=verifier, seed=seed, method=method,
        batch_size=batch_size,
        n_boot=n_boot, progress=progress, command=command,
        align_cache=None if align_cache is None else Path(align_cache))
    s.validate()
    distributed = engine is not None and getattr(engine, "name", "local") != "local"
    if distributed and not isinstance(s.verifier, (str, Path)):
        raise UserError("--engine ray needs the verifier as a name, NAME:SOURCE or model "
                        "folder (each worker loads it), not a verifier object")
    started = time.perf_counter()
    pair_list = load_pairs(s)
    model = load_verifier(s.verifier)
    steps = cascade_steps(model)  # fails now for a verifier without transformer blocks
    groups = parameter_groups(model)
    fingerprint = model_fingerprint(model)
    cache = s.align_cache or (s.out / "aligned" if s.out is not None else None)
    probes, galleries, kept, skipped = align_pairs(pair_list, cache)
    same = np.array([p.same for p in kept])
    blob = center_blob(tuple(probes.shape[-2:]))

    references: dict[str, StepMaps] = {}
    records: dict[str, list[dict[str, Any]]] = {g: [] for g in s.generators}
    done: dict[tuple[int, str], tuple[StepMaps, float]] = {}
    if distributed:
        done = explain_steps(engine, s, steps, probes, galleries)
    with tqdm(total=len(steps) * len(s.generators), desc="sanity", unit="explanation",
              disable=not s.progress) as bar:
        for step in steps:
            v = model if step.index == 0 or distributed else \
                randomised_verifier(model, step, s.seed)
            for g in s.generators:
                t0 = time.perf_counter()
                if distributed:
                    maps, worker_seconds = done.pop((step.index, g))
                    t0 -= worker_seconds
                else:
                    maps = explain_step(v, probes, galleries, g, s.batch_size, s.method)
                if step.index == 0:
                    references[g] = maps
                sims = similarity_to_reference(references[g], maps)
                records[g].append(_step_record(
                    step, sims, blob_similarity(maps, blob), maps, references[g], same,
                    time.perf_counter() - t0, s.n_boot, s.seed))
                bar.update(1)
            del v

    per_generator: dict[str, Any] = {}
    for g in s.generators:
        chance_sims = chance_similarity(references[g])
        chance = {kind: {"spearman": _interval(chance_sims[kind]["spearman"], s.n_boot, s.seed),
                         "ssim": _interval(chance_sims[kind]["ssim"], s.n_boot, s.seed)}
                  for kind in KINDS}
        per_generator[g] = {
            "chance": chance,
            "steps": records[g],
            "below_chance": {kind: below_chance(records[g], chance, kind) for kind in KINDS},
        }

    result: dict[str, Any] = {
        "command": s.command,
        "method": "cascading model randomisation (Adebayo et al., NeurIPS 2018, Sec. 3.1) of "
                  + ("the paper explainer (Correia et al., Sec. 3.1)" if s.method == "paper"
                     else f"the {s.method} explainer"),
        "model": {"verifier": s.to_dict()["verifier"],
                  "kind": getattr(model, "name", type(model).__name__),
                  "threshold": float(model.threshold), "fingerprint": fingerprint,
                  "depth": len(model.backbone.blocks)},
        "settings": s.to_dict(),
        "pairs": {"selected": len(pair_list), "explained": len(kept),
                  "genuine": int(same.sum()), "impostor": int((~same).sum()),
                  "skipped": skipped,
                  "list": [{"probe": str(p.probe), "gallery": str(p.gallery), "same": p.same,
                            "fold": p.fold} for p in kept]},
        "randomisation": {
            "distribution": "per tensor: Gaussian with the tensor's own mean and population "
                            "standard deviation",
            "constant_tensors": f"std {CONSTANT_RELATIVE_STD} x |mean|, or "
                                f"{CONSTANT_ZERO_STD} when the mean is 0",
            "seed": s.seed, "seeded_per": "tensor name (cumulative cascade)",
            "buffers": "kept (e.g. BatchNorm running statistics)",
            "groups": groups,
        },
        "steps": [{"step": st.index, "random": st.label, "groups": list(st.groups)}
                  for st in steps],
        "center_blob_sigma": _center_blob_sigma(),
        "generators": per_generator,
        "seconds": round(time.perf_counter() - started, 3),
    }
    if s.out is not None:
        write_outputs(result, s.out)
    return result


def _center_blob_sigma() -> float:
    from xfr.evaluation.references import CENTER_BLOB_SIGMA

    return float(CENTER_BLOB_SIGMA)


# -- output -----------------------------------------------------------------------------------
def _fmt(ci: dict[str, Any], digits: int = 3) -> str:
    if ci.get("estimate") is None:
        return "n/a"
    if ci.get("low") is None:
        return f"{ci['estimate']:.{digits}f}"
    return f"{ci['estimate']:.{digits}f} [{ci['low']:.{digits}f}, {ci['high']:.{digits}f}]"


def _sentence(g: str, r: dict[str, Any], kind: str) -> str:
    what = "final heatmap" if kind == "final" else "raw attention map"
    level = r["chance"][kind]["spearman"]
    if level["estimate"] is None:
        return f"**{g}**: no chance level for the {what}s (too few pairs with a map)."
    step = r["below_chance"][kind]
    if step is None:
        last = r["steps"][-1]
        return (f"**{g}**: the {what}'s Spearman similarity to the trained model's never "
                f"drops below the chance level ({level['estimate']:.3f}); with every parameter "
                f"random (step {last['step']}) it is still {_fmt(last[kind]['spearman'])}.")
    rec = next(x for x in r["steps"] if x["step"] == step)
    return (f"**{g}**: the {what}'s Spearman similarity to the trained model's drops below "
            f"the chance level ({level['estimate']:.3f}) at step {step} (random: "
            f"{rec['random']}): {_fmt(rec[kind]['spearman'])}.")


def explainer_words(result: dict[str, Any]) -> str:
    """Which explainer a result checked, in words (older results: the paper's)."""
    name = str(result.get("settings", {}).get("explainer", "paper")).split(" ", 1)[0]
    if name == "paper":
        return "the paper's explainer (Correia et al., Sec. 3.1)"
    return f"the `{name}` explainer"


def markdown(result: dict[str, Any]) -> str:
    """``sanity.md``: per generator the similarity table, the chance level, the centre-blob
    similarity and the plain-words verdict."""
    m, p = result["model"], result["pairs"]
    groups = result["randomisation"]["groups"]
    top = sorted({n.rsplit(".", 1)[0] for n in groups["top"]})
    stem = sorted({n.split(".")[1] if n.startswith("backbone.") else n.split(".")[0]
                   for n in groups["stem"]})
    lines = [
        "# Model-randomisation sanity check",
        "",
        "Cascading randomisation (Adebayo et al., *Sanity Checks for Saliency Maps*, NeurIPS "
        f"2018, Sec. 3.1) of {explainer_words(result)}: step 0 is the "
        "trained model; each later step re-draws the parameters of one more transformer "
        "block, from the top down, and the last step also the embedding stem. Each "
        "parameter tensor is re-drawn from a Gaussian with its own mean and standard "
        "deviation. An explanation that depends on what the model learned should become as "
        "unlike the trained model's as the maps of two different pairs are (the chance "
        "level).",
        "",
        f"- model: `{m['verifier']}` ({m['kind']}, {m['depth']} blocks, threshold "
        f"{m['threshold']:.4f}, weights sha1 `{m['fingerprint'][:16]}`)",
        f"- pairs: {p['explained']} explained ({p['genuine']} genuine, {p['impostor']} "
        f"impostor) of {p['selected']} selected, {len(p['skipped'])} skipped; "
        f"seed {result['settings']['seed']}",
        f"- top = {', '.join(f'`{t}`' for t in top) or 'nothing'}; "
        f"stem = {', '.join(f'`{t}`' for t in stem)}",
        "- Spearman: rank correlation over pixels, SSIM: structural similarity "
        "(data range 1), each per face and averaged over the pair's two faces; mean over "
        "pairs [bootstrap 95 % CI]. Chance level: pair i vs pair i+1 under the trained model.",
        f"- centre blob: Spearman with a centred Gaussian (sigma "
        f"{result['center_blob_sigma']:g} px), the 'faces are centred' prior.",
        "",
    ]
    for g, r in result["generators"].items():
        lines += [f"## {g}", "",
                  "| step | random | Spearman raw | Spearman final | SSIM raw | SSIM final |",
                  "| ---: | --- | --- | --- | --- | --- |"]
        for st in r["steps"]:
            lines.append(f"| {st['step']} | {st['random']} | {_fmt(st['raw']['spearman'])} | "
                         f"{_fmt(st['final']['spearman'])} | {_fmt(st['raw']['ssim'])} | "
                         f"{_fmt(st['final']['ssim'])} |")
        c = r["chance"]
        lines += [f"| chance | two different pairs, trained model | "
                  f"{_fmt(c['raw']['spearman'])} | {_fmt(c['final']['spearman'])} | "
                  f"{_fmt(c['raw']['ssim'])} | {_fmt(c['final']['ssim'])} |", "",
                  "| step | centre blob raw | centre blob final | no final heatmap | "
                  "accuracy | decisions changed |",
                  "| ---: | --- | --- | ---: | ---: | ---: |"]
        for st in r["steps"]:
            lines.append(f"| {st['step']} | {_fmt(st['raw']['center_blob_spearman'])} | "
                         f"{_fmt(st['final']['center_blob_spearman'])} | "
                         f"{st['final']['no_heatmap']} | {100 * st['accuracy']:.1f} % | "
                         f"{st['decisions_changed']} |")
        lines += ["", _sentence(g, r, "final"), "", _sentence(g, r, "raw"), ""]
    lines += [f"Run time: {result['seconds']:.0f} s. Command: `{result['command']}`", ""]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> Path:
    """``sanity.png``: mean Spearman (with CI bands) vs step, raw and final, per generator;
    the chance levels as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    gens = list(result["generators"])
    fig = Figure(figsize=(4.2 * len(gens), 3.6), layout="constrained")
    axes = fig.subplots(1, len(gens), squeeze=False)[0]
    colours = {"raw": "tab:blue", "final": "tab:red"}
    names = {"raw": "raw attention map", "final": "final heatmap"}
    for ax, g in zip(axes, gens, strict=True):
        r = result["generators"][g]
        for kind in KINDS:
            x, y, lo, hi = [], [], [], []
            for st in r["steps"]:
                ci = st[kind]["spearman"]
                if ci["estimate"] is None:
                    continue
                x.append(st["step"])
                y.append(ci["estimate"])
                lo.append(ci["low"] if ci["low"] is not None else ci["estimate"])
                hi.append(ci["high"] if ci["high"] is not None else ci["estimate"])
            ax.plot(x, y, "o-", color=colours[kind], label=names[kind])
            ax.fill_between(x, lo, hi, color=colours[kind], alpha=0.15, linewidth=0)
            level = r["chance"][kind]["spearman"]["estimate"]
            if level is not None:
                ax.axhline(level, color=colours[kind], linestyle="--", linewidth=1,
                           label=f"chance ({kind})")
        ax.set_title(g)
        ax.set_xlabel("cascade step (0 trained, last: all random)")
        ax.set_xticks([st["step"] for st in r["steps"]])
        ax.set_ylim(min(-0.2, ax.get_ylim()[0]), 1.05)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Spearman to the trained model's map")
    axes[0].legend(fontsize=7, loc="lower left")
    fig.savefig(path, dpi=130)
    return path


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_outputs(result: dict[str, Any], out: str | Path) -> list[Path]:
    """Write ``sanity.json``, ``sanity.md``, ``sanity.png`` and ``command.txt``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "sanity.json", out / "sanity.md", out / "sanity.png", out / "command.txt"]
    _write(files[0], json.dumps(result, indent=1, allow_nan=False))
    _write(files[1], markdown(result))
    plot(result, files[2])
    m = result["model"]
    _write(files[3], f"{result['command'] or '(called from Python: run_sanity)'}\n"
                     f"# model {m['verifier']} ({m['kind']}), weights sha1 {m['fingerprint']}; "
                     f"seed {result['settings']['seed']}\n")
    return files
