"""Orchestration of ``xfr evaluate`` (paper Sec. 4): pairs -> aligned faces -> verification ->
explanations -> Table 1 scores and deletion/insertion curves, resumable and shardable.

Work is split into *units*, each cached per pair on disk, so that an interrupted run resumes
where it stopped and ``--shard i/k`` processes can share the work:

- ``paper-<generator>``: the paper's explainer (by default the selector ``fixed:oim``, the
  paper's conclusion in Sec. 4, which still scores every candidate with SM+/SM-) on every
  selected pair: the scores of Table 1; for true positives and true negatives also the deletion
  and insertion curves of its heatmap and, as the reference without the masking step, of the
  raw attention maps;
- ``random``, ``random-shared``, ``center-blob``: the same curves for the reference orders of
  :mod:`xfr.evaluation.references` (a map that knows nothing about the model), over every true
  positive and true negative;
- one unit per baseline explainer (``minplus``, ``rise``, ``lime``, ``avg``, any registered
  explainer), on a seeded random subset of the true positives and true negatives
  (``baseline_limit`` of each; every other method is also reported on that same subset).

Curve labels say what ran (:func:`paper_labels`): ``paper-<generator>-<selector>`` (``oim`` for
``fixed:oim``, ``metric`` for the SM+/SM- selector...) followed by ``+key=value`` for every other
paper option that differs from ``xfr evaluate``'s default (``target``, ``fill``, smoothing...),
and ``attention-<generator>`` followed by the options that change the attention maps
(``target``, ``generator_options``). :meth:`Evaluation.curve_sources` gives every label's full
configuration (written to ``command.txt`` and the report).

Cache layout: ``<cache>/<model fingerprint>/<unit>-<settings hash>/<pair key>.json``; the pair
key is the SHA-1 of the two image files' SHA-1s, so renaming folders keeps the cache valid and
any change of model, threshold, curve steps, seed or method options starts a fresh one. A paper
record keeps its curves under ``heatmap`` and ``attention`` (records written before labels
carried the configuration used ``paper-<generator>-oim`` and ``attention-<generator>``; they
are still read).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from xfr.data.lfw import Pair
from xfr.evaluation.deletion import DEFAULT_FRACTIONS, MODES, check_fractions, curve_distances
from xfr.evaluation.references import (
    CENTER_BLOB_SIGMA,
    REFERENCES,
    pair_seed,
    random_maps,
    reference_description,
    reference_maps,
)
from xfr.interfaces.vocabulary import BEST_STRATEGY, Decision, decide, is_positive

DEFAULT_GENERATORS: tuple[str, ...] = ("rollout", "vit-lrp", "nograd-lrp")
DEFAULT_METHODS: tuple[str, ...] = ("paper", "attention", *REFERENCES)
BASELINES: tuple[str, ...] = ("minplus", "rise", "lime", "avg")
#: Methods that are not explainer plugins.
BUILTIN_METHODS: tuple[str, ...] = ("paper", "attention", *REFERENCES)

#: ``xfr evaluate``'s own setting of the paper explainer: the fixed OIM selector (paper Sec. 4:
#: "OIM is the most effective masking technique for both types of FV decision").
PAPER_EVAL_OPTIONS: dict[str, Any] = {"selector": f"fixed:{BEST_STRATEGY}"}
#: Paper options that change the speed only, never a number: left out of curve labels.
SPEED_ONLY_OPTIONS: frozenset[str] = frozenset({"batch_size"})
#: Paper options that change the attention maps, hence the ``attention-<generator>`` curve.
ATTENTION_OPTIONS: frozenset[str] = frozenset({"generator_options", "target"})
#: Grid of the random references (cells per side before the bilinear upsampling).
REFERENCE_GRID = 14


def paper_defaults() -> dict[str, Any]:
    """The paper explainer's options as ``xfr evaluate`` runs it when given no ``--option``:
    the plugin's defaults with :data:`PAPER_EVAL_OPTIONS` (no generator: one unit each)."""
    from xfr import registry

    opts = {**registry.create("explainer", "paper").options, **PAPER_EVAL_OPTIONS}
    opts.pop("generator", None)
    return opts


def selector_tag(selector: Any) -> str:
    """The part of a curve label naming a selector: ``"fixed:oim"`` (or ``"fixed"``, which
    means the same) -> ``"oim"``, ``"fixed:um"`` -> ``"um"``, ``"metric"`` -> ``"metric"``."""
    text = str(selector).strip()
    name, _, argument = text.partition(":")
    if name == "fixed":
        return argument.strip() or BEST_STRATEGY
    return text.replace(":", "-")


def _option_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def paper_labels(generator: str, options: dict[str, Any],
                 defaults: dict[str, Any]) -> tuple[str, str]:
    """Labels of the two curves of a paper unit: its heatmap and its raw attention maps.

    ``paper-<generator>-<selector_tag>`` and ``attention-<generator>``, each followed by
    ``+key=value`` (sorted by key) for every option of ``options`` that differs from
    ``defaults`` (:func:`paper_defaults`) and changes that curve: every option for the
    heatmap except the generator, the selector (already named) and speed-only options; only
    :data:`ATTENTION_OPTIONS` for the attention maps. ``paper-<generator>-oim`` thus means
    exactly the evaluation's default configuration with the fixed OIM selector (paper Sec. 4).
    """
    config = {**defaults, **options}
    changed = sorted(k for k in config
                     if k not in ("generator", "selector") and k not in SPEED_ONLY_OPTIONS
                     and (k not in defaults or config[k] != defaults[k]))
    selector = config.get("selector", PAPER_EVAL_OPTIONS["selector"])
    heat = f"paper-{generator}-{selector_tag(selector)}"
    heat += "".join(f"+{k}={_option_text(config[k])}" for k in changed)
    att = f"attention-{generator}"
    att += "".join(f"+{k}={_option_text(config[k])}" for k in changed if k in ATTENTION_OPTIONS)
    return heat, att


@dataclass
class CurveSource:
    """Where the records of one curve label are and what produced them."""

    #: The unit whose records hold the curve.
    unit: str
    #: The curve's key in a record's ``curves`` (then older keys of the same curve).
    keys: tuple[str, ...]
    #: The ``--methods`` entry it comes from.
    method: str
    #: Everything that produced it (explainer options, reference maps).
    configuration: dict[str, Any]
    #: Run on the baselines' subset only.
    baseline: bool = False

    def curves(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """This label's curves (``{mode: distances}``) in a unit record, if there."""
        held = record.get("curves", {})
        return next((held[k] for k in self.keys if k in held), None)


#: Generator options that change the speed only, never a map: left out of cache keys.
GENERATOR_SPEED_OPTIONS: frozenset[str] = frozenset({"batch_size", "workers"})


def generator_configuration(generator: Any) -> str:
    """An attention generator's configuration for a cache key: its repr without
    ``batch_size`` (images per model pass) and ``workers`` (chunks side by side), which change
    the speed, never the maps."""
    options = ", ".join(f"{k}={v!r}" for k, v in vars(generator).items()
                        if k not in GENERATOR_SPEED_OPTIONS)
    return f"{type(generator).__name__}({options})"


@dataclass
class EvalSettings:
    """Everything that defines one evaluation run (``xfr evaluate``'s arguments)."""

    pairs: Path
    root: Path
    out: Path
    format: str = "auto"
    folds: set[int] | None = None
    verifier: Any = "default"
    methods: tuple[str, ...] = DEFAULT_METHODS
    generators: tuple[str, ...] = DEFAULT_GENERATORS
    limit: int | None = None
    #: ``(i, k)``: this process does the pairs with ``index % k == i - 1`` (``i`` 1-based).
    shard: tuple[int, int] | None = None
    seed: int = 0
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS
    #: Which curves: ``"deletion"`` and/or ``"insertion"``.
    curves: tuple[str, ...] = MODES
    #: True positives and true negatives (each) the baselines run on; ``None``: all.
    baseline_limit: int | None = 100
    #: Smaller limits for single baselines, e.g. ``{"rise": 20}``: the first 20 true positives
    #: and true negatives of the same seeded draw, so a later, larger limit extends the run.
    method_limits: dict[str, int] = field(default_factory=dict)
    #: Pairs per explanation batch.
    batch_size: int = 32
    #: Images per ``verifier.embed`` call of the curves.
    embed_batch: int = 512
    #: Per-method explainer options, e.g. ``{"rise": {"n_masks": 2000}}``.
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    cache: Path | None = None
    align_cache: Path | None = None
    n_boot: int = 2000
    progress: bool = True
    #: Compute nothing: report what the cache holds (missing pairs are counted, not hidden).
    report_only: bool = False
    #: The exact command line, recorded in ``command.txt``.
    command: str = ""
    #: Where the units' model passes run (:mod:`xfr.engines`); ``None``: this process. Not
    #: part of any cache key: every engine gives the same records.
    engine: Any = None

    def validate(self) -> None:
        check_fractions(self.fractions)
        unknown = set(self.curves) - set(MODES)
        if unknown or not self.curves:
            raise ValueError(f"--curves must name one or more of {MODES}, got {self.curves}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {self.limit}")
        if self.baseline_limit is not None and self.baseline_limit < 1:
            raise ValueError(f"--baseline-limit must be >= 1, got {self.baseline_limit}")
        for name, n in self.method_limits.items():
            if name not in self.methods or name in BUILTIN_METHODS:
                raise ValueError(f"--method-limit {name}={n}: {name} is not one of the "
                                 "baseline explainers of --methods")
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"--method-limit {name}={n}: the limit must be an integer >= 1")
            if self.baseline_limit is not None and n > self.baseline_limit:
                raise ValueError(f"--method-limit {name}={n} is above --baseline-limit "
                                 f"{self.baseline_limit}")
        if self.batch_size < 1 or self.embed_batch < 1:
            raise ValueError("batch sizes must be >= 1")
        if self.shard is not None:
            i, k = self.shard
            if k < 1 or not 1 <= i <= k:
                raise ValueError(f"--shard i/k needs 1 <= i <= k, got {i}/{k}")
        if not self.methods:
            raise ValueError("no methods to evaluate")
        if {"paper", "attention"} & set(self.methods) and not self.generators:
            raise ValueError("the paper and attention methods need at least one generator")
        if "generator" in self.options.get("paper", {}):
            raise ValueError("choose the paper explainer's attention generators with "
                             "--generators, not --option paper.generator")
        for name in self.options:
            if name in BUILTIN_METHODS and name != "paper":
                raise ValueError(f"{name} takes no --option (the attention maps follow the "
                                 "paper explainer's: --option paper.target=..., "
                                 "paper.generator_options=...)" if name == "attention" else
                                 f"the reference {name} takes no --option")
            if name == "paper" and "attention" in self.methods:
                continue
            if name not in self.methods:
                raise ValueError(f"options given for {name!r}, which is not among the methods "
                                 f"{list(self.methods)}")


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> ``(2, 4)`` (1-based shard index)."""
    try:
        i, k = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/k (e.g. 1/4), got {text!r}") from None
    if k < 1 or not 1 <= i <= k:
        raise ValueError(f"--shard i/k needs 1 <= i <= k, got {text!r}")
    return i, k


def limit_pairs(pairs: Sequence[Pair], limit: int | None, seed: int = 0) -> list[int]:
    """Indices (in file order) of a seeded random subset of ``limit`` pairs, genuine and
    impostor pairs taken in turn so that half of each are kept. With the same seed a larger
    limit contains a smaller one's pairs, so their cached results are reused."""
    if limit is None or limit >= len(pairs):
        return list(range(len(pairs)))
    rng = np.random.default_rng(seed)
    pos = [i for i, p in enumerate(pairs) if p.same]
    neg = [i for i, p in enumerate(pairs) if not p.same]
    pos = [pos[j] for j in rng.permutation(len(pos))]
    neg = [neg[j] for j in rng.permutation(len(neg))]
    out: list[int] = []
    for i in range(max(len(pos), len(neg))):
        out += ([pos[i]] if i < len(pos) else []) + ([neg[i]] if i < len(neg) else [])
        if len(out) >= limit:
            break
    return sorted(out[:limit])


def model_fingerprint(verifier: Any) -> str:
    """SHA-1 of a verifier's kind, threshold and weights (its ``model``'s state dict)."""
    import torch

    h = hashlib.sha1()
    h.update(str(getattr(verifier, "name", type(verifier).__name__)).encode())
    h.update(repr(float(verifier.threshold)).encode())
    h.update(repr(getattr(verifier, "flip", None)).encode())
    model = getattr(verifier, "model", None)
    if isinstance(model, torch.nn.Module):
        for k, v in sorted(model.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    elif hasattr(verifier, "fingerprint"):
        h.update(str(verifier.fingerprint).encode())
    else:
        h.update(repr(type(verifier)).encode())
    return h.hexdigest()


def _digest(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _write_json(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


@dataclass
class PairInfo:
    """A selected pair with its verification outcome."""

    index: int
    pair: Pair
    key: str
    distance: float
    same: bool
    #: The unperturbed probe's and gallery's embeddings that gave ``distance``; the curves'
    #: unperturbed steps reuse them instead of embedding the pair again.
    embeddings: tuple[np.ndarray, np.ndarray] = field(repr=False, compare=False)

    def decision(self, threshold: float) -> Decision:
        """The verifier's decision on this pair at ``threshold`` (paper Sec. 3.1)."""
        return decide(self.distance, threshold)


def _verified_embeddings(infos: list[PairInfo]) -> tuple[Any, Any]:
    """The probes' and galleries' embeddings ``(N, D)`` that verified ``infos``: a curve's
    unperturbed step is then the pair's decision distance exactly, and costs no model pass
    (embedding again would cost two per pair and unit, and may differ in the last bits: float32
    matrix products can block differently by batch size)."""
    import torch

    return (torch.from_numpy(np.stack([i.embeddings[0] for i in infos])),
            torch.from_numpy(np.stack([i.embeddings[1] for i in infos])))


@dataclass
class Unit:
    """One cached piece of work: an explainer run over some pairs, giving curves/scores."""

    name: str
    settings: dict[str, Any]
    pairs: list[PairInfo]
    compute: Callable[[list[PairInfo]], list[dict[str, Any]]]


class Evaluation:
    """One run of the evaluation; :meth:`run` computes what is missing and returns results."""

    def __init__(self, settings: EvalSettings) -> None:
        settings.validate()
        self.s = settings
        self.cache_root = Path(settings.cache or settings.out / "cache")
        self.align_root = Path(settings.align_cache or self.cache_root / "aligned")
        self.fractions = check_fractions(settings.fractions)
        self.skipped: list[dict[str, str]] = []
        self._blank: Any = None
        self.tp: list[PairInfo] = []
        self.tn: list[PairInfo] = []
        #: The seeded order of the true positives and true negatives the limits take from.
        self._draw_order: tuple[np.ndarray, np.ndarray] = (np.arange(0), np.arange(0))

    # -- setup -----------------------------------------------------------------------------
    def load_pairs(self) -> list[Pair]:
        from xfr.data.pairs import read_pair_list, select_folds

        pairs = select_folds(read_pair_list(self.s.pairs, self.s.root, self.s.format),
                             self.s.folds)
        if not pairs:
            raise ValueError("no pairs selected")
        missing = [str(p) for pair in pairs for p in (pair.probe, pair.gallery) if not p.exists()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} image file(s) of the pair list are missing "
                                    f"under {self.s.root}, e.g. {missing[:3]}")
        return pairs

    def align(self, pairs: list[Pair]) -> tuple[dict[Path, np.ndarray], dict[Path, str]]:
        """Aligned crops of every image (cached by file hash) and each file's SHA-1."""
        from tqdm import tqdm

        from xfr.align import AlignmentCache, file_digest

        cache = AlignmentCache(self.align_root)
        files = sorted({p for pair in pairs for p in (pair.probe, pair.gallery)})
        crops: dict[Path, np.ndarray] = {}
        digests: dict[Path, str] = {}
        for f in tqdm(files, desc="aligning", disable=not self.s.progress, unit="img"):
            digests[f] = file_digest(f)
            try:
                crops[f] = cache.get(f)
            except ValueError as exc:  # NoFaceError / ImageError: reported, never silent
                self.skipped.append({"file": str(f), "reason": f"{type(exc).__name__}: {exc}"})
        return crops, digests

    def verify(self, verifier: Any, pairs: list[Pair], crops: dict[Path, np.ndarray],
               digests: dict[Path, str]) -> list[PairInfo]:
        """Distances of every pair whose two faces were aligned (batched embedding calls)."""
        import torch

        from xfr.api import to_tensor

        files = sorted(crops)
        where = {f: i for i, f in enumerate(files)}
        # embeddings of the unperturbed faces, cached per model and image hash
        store = self.results_root() / "embeddings.npz"
        known: dict[str, np.ndarray] = {}
        if store.exists():
            with np.load(store) as z:
                known = dict(zip(z["digests"].tolist(), z["embeddings"], strict=True))
        todo = [f for f in files if digests[f] not in known]
        for s in range(0, len(todo), 256):
            chunk = todo[s : s + 256]
            e = verifier.embed(to_tensor(np.stack([crops[f] for f in chunk]))).cpu().numpy()
            known.update({digests[f]: row for f, row in zip(chunk, e, strict=True)})
        if todo:
            store.parent.mkdir(parents=True, exist_ok=True)
            tmp = store.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(tmp, digests=np.array(list(known)), embeddings=np.stack(list(known.values())))
            os.replace(tmp, store)
        emb = torch.from_numpy(np.stack([known[digests[f]] for f in files]))
        infos: list[PairInfo] = []
        for i, p in enumerate(pairs):
            if p.probe not in where or p.gallery not in where:
                self.skipped.append({"pair": f"{p.probe} | {p.gallery}",
                                     "reason": "a face could not be aligned"})
                continue
            e_p, e_g = emb[where[p.probe]], emb[where[p.gallery]]
            d = float(verifier.distance(e_p[None], e_g[None])[0])
            key = hashlib.sha1((digests[p.probe] + digests[p.gallery]).encode()).hexdigest()[:20]
            infos.append(PairInfo(i, p, key, d, p.same, (e_p.numpy(), e_g.numpy())))
        return infos

    # -- units ------------------------------------------------------------------------------
    def _tensors(self, infos: list[PairInfo]) -> tuple[Any, Any]:
        from xfr.api import to_tensor

        probes = to_tensor(np.stack([self.crops[i.pair.probe] for i in infos]))
        galleries = to_tensor(np.stack([self.crops[i.pair.gallery] for i in infos]))
        return probes, galleries

    def _curves(self, infos: list[PairInfo], probes: Any, galleries: Any,
                maps: dict[int, np.ndarray]) -> dict[int, dict[str, list[float]]]:
        """Deletion and insertion distances of the true positives/negatives among ``infos``
        that have a map ``(2, H, W)`` in ``maps`` (keyed by position in ``infos``)."""
        import torch

        th = float(self.verifier.threshold)
        out: dict[int, dict[str, list[float]]] = {}
        if self._blank is None:
            self._blank = self.verifier.embed(torch.zeros_like(probes[:1]))[0]
        for positive in (True, False):
            idx = [j for j, info in enumerate(infos) if j in maps
                   and info.same == positive and is_positive(info.distance, th) == positive]
            if not idx:
                continue
            m = np.stack([maps[j] for j in idx]).astype(np.float32)
            seeds = [pair_seed(self.s.seed, infos[j].key, "ties") for j in idx]
            unperturbed = _verified_embeddings([infos[j] for j in idx])
            for mode in self.s.curves:
                d = curve_distances(self.verifier, probes[idx], galleries[idx], m[:, 0],
                                    None if positive else m[:, 1], fractions=self.fractions,
                                    mode=mode, seeds=seeds, batch_size=self.s.embed_batch,
                                    embeddings=unperturbed, blank=self._blank)
                for row, j in enumerate(idx):
                    out.setdefault(j, {})[mode] = [float(x) for x in d[row]]
        return out

    def paper_options(self, generator: str) -> dict[str, Any]:
        """The paper explainer's options for ``generator``'s unit: :data:`PAPER_EVAL_OPTIONS`
        overridden by ``--option paper.KEY=VALUE``."""
        return {"generator": generator, **PAPER_EVAL_OPTIONS, **self.s.options.get("paper", {})}

    def _paper_unit(self, generator: str) -> Unit:
        opts = self.paper_options(generator)

        def compute(infos: list[PairInfo]) -> list[dict[str, Any]]:
            from xfr import registry

            probes, galleries = self._tensors(infos)
            explainer = registry.create("explainer", "paper")
            expl = explainer.explain_pairs(self.verifier, probes, galleries, **opts)
            heat = {j: e.heatmaps for j, e in enumerate(expl) if e.heatmaps is not None}
            att = {j: e.attention_maps for j, e in enumerate(expl)
                   if e.attention_maps is not None}
            curves = {"heatmap": self._curves(infos, probes, galleries, heat),
                      "attention": self._curves(infos, probes, galleries, att)}
            records = []
            for j, e in enumerate(expl):
                records.append({
                    "decision": e.decision, "distance": e.distance,
                    "scores": {c.name: c.score for c in e.candidates},
                    "removed_area": {c.name: c.removed_area for c in e.candidates},
                    "strategy": e.strategy, "has_heatmap": e.heatmaps is not None,
                    "curves": {name: c[j] for name, c in curves.items() if j in c},
                })
            return records

        return Unit(f"paper-{generator}", {"explainer": "paper", **opts,
                                           "configuration": self._paper_configuration(opts)},
                    self.infos, compute)

    @staticmethod
    def _paper_configuration(opts: dict[str, Any]) -> dict[str, Any]:
        """Everything that decides the paper explainer's output, defaults included (the
        explainer's resolved options and its generator's repr), so that a cache made under
        other rules is never reused."""
        from xfr import registry

        explainer = registry.create("explainer", "paper")
        resolved = {**explainer.options, **opts}
        generator = registry.create("attention", resolved["generator"],
                                    **resolved["generator_options"])
        return {"options": resolved, "generator": generator_configuration(generator)}

    def _reference_unit(self, name: str) -> Unit:
        """A reference order of :mod:`xfr.evaluation.references` over the true positives and
        true negatives (its own cached unit, like an explainer)."""
        if name == "random":  # the settings it had before the other references existed
            settings: dict[str, Any] = {"grid": REFERENCE_GRID, "seed": self.s.seed}
        elif name == "random-shared":
            settings = {"reference": name, "grid": REFERENCE_GRID, "seed": self.s.seed}
        else:
            settings = {"reference": name, "sigma": CENTER_BLOB_SIGMA}

        def compute(infos: list[PairInfo]) -> list[dict[str, Any]]:
            probes, galleries = self._tensors(infos)
            maps = reference_maps(name, [i.key for i in infos], self.s.seed,
                                  tuple(probes.shape[-2:]))
            curves = self._curves(infos, probes, galleries, dict(enumerate(maps)))
            return [{"curves": {name: curves[j]} if j in curves else {}}
                    for j in range(len(infos))]

        return Unit(name, settings, self.curve_pairs, compute)

    def _baseline_unit(self, name: str) -> Unit:
        opts = dict(self.s.options.get(name, {}))

        def compute(infos: list[PairInfo]) -> list[dict[str, Any]]:
            from xfr import registry

            probes, galleries = self._tensors(infos)
            explainer = registry.create("explainer", name, **opts)
            expl = explainer.explain_pairs(self.verifier, probes, galleries)
            heat = {j: e.heatmaps for j, e in enumerate(expl) if e.heatmaps is not None}
            curves = self._curves(infos, probes, galleries, heat)
            return [{"has_heatmap": e.heatmaps is not None,
                     "curves": {name: curves[j]} if j in curves else {}}
                    for j, e in enumerate(expl)]

        pairs = self.baseline_pairs(self.s.method_limits.get(name, self.s.baseline_limit))
        return Unit(name, {"explainer": name,
                           "configuration": self.explainer_configuration(name)}, pairs, compute)

    def explainer_configuration(self, name: str) -> dict[str, Any]:
        """Every option the explainer ``name`` runs with, its defaults included: part of the
        unit's cache key, so a changed default starts a fresh cache instead of mixing
        results of two configurations."""
        from xfr import registry

        explainer = registry.create("explainer", name, **self.s.options.get(name, {}))
        configuration = dict(explainer.options)
        generator = configuration.get("generator")
        if isinstance(generator, str):  # the attention part, with its own defaults
            configuration["generator_configuration"] = generator_configuration(registry.create(
                "attention", generator, **configuration.get("generator_options", {})))
        plain: dict[str, Any] = json.loads(json.dumps(configuration, sort_keys=True,
                                                      default=str))
        return plain

    def baseline_pairs(self, limit: int | None) -> list[PairInfo]:
        """The first ``limit`` true positives and true negatives of the seeded draw, in file
        order (all of them for ``None``)."""
        out: list[PairInfo] = []
        for xs, order in zip((self.tp, self.tn), self._draw_order, strict=True):
            take = order if limit is None else order[:limit]
            out += [xs[j] for j in sorted(take.tolist())]
        return out

    def units(self) -> list[Unit]:
        out: list[Unit] = []
        if {"paper", "attention"} & set(self.s.methods):
            out += [self._paper_unit(g) for g in self.s.generators]
        out += [self._reference_unit(m) for m in REFERENCES if m in self.s.methods]
        out += [self._baseline_unit(m) for m in self.s.methods if m not in BUILTIN_METHODS]
        return out

    def curve_sources(self) -> dict[str, CurveSource]:
        """Every curve label of this run, in report order, with where its records are and the
        configuration that produced it (paper Sec. 4, Fig. 2's methods and the references)."""
        methods = set(self.s.methods)
        out: dict[str, CurveSource] = {}
        if {"paper", "attention"} & methods:
            defaults = paper_defaults()
            user = self.s.options.get("paper", {})
            for g in self.s.generators:
                opts = self.paper_options(g)
                heat, att = paper_labels(g, user, defaults)
                full = {"explainer": "paper", "generator": g, **defaults, **opts}
                if "paper" in methods:
                    out[heat] = CurveSource(f"paper-{g}", ("heatmap", f"paper-{g}-oim"), "paper",
                                            {**full, "curve": "the explainer's final heatmap"})
                if "attention" in methods:
                    conf = {k: full[k] for k in ("explainer", "generator", *sorted(
                        ATTENTION_OPTIONS)) if k in full}
                    out[att] = CurveSource(f"paper-{g}", ("attention", f"attention-{g}"),
                                           "attention",
                                           {**conf, "curve": "the raw attention maps (one per "
                                                             "face) before Otsu and masking"})
        for m in REFERENCES:
            if m in methods:
                conf = {"reference": m, "maps": reference_description(m, self.s.seed,
                                                                      REFERENCE_GRID)}
                out[m] = CurveSource(m, (m,), m, conf)
        for m in self.s.methods:
            if m not in BUILTIN_METHODS:
                out[m] = CurveSource(m, (m,), m, {"explainer": m,
                                                  **self.explainer_configuration(m)},
                                     baseline=True)
        return out

    def unit_dir(self, unit: Unit) -> Path:
        settings = {**unit.settings, "fractions": [float(f) for f in self.fractions],
                    "seed": self.s.seed, "fill": "zeros", "curves": sorted(self.s.curves)}
        return self.results_root() / f"{unit.name}-{_digest(settings)[:10]}"

    def results_root(self) -> Path:
        """The cache folder of this model's embeddings and units: by the model's fingerprint
        and the version of the aligned crops (:data:`xfr.align.ALIGNMENT_VERSION`), so that
        results made from other weights or other crops are never read."""
        from xfr.align import ALIGNMENT_VERSION

        return self.cache_root / f"{self.fingerprint[:16]}-a{ALIGNMENT_VERSION}"

    def run_unit(self, unit: Unit) -> dict[str, dict[str, Any]]:
        """Compute the missing pairs of ``unit`` (this shard's share); return every cached
        record of the unit's pairs, keyed by pair key."""
        from tqdm import tqdm

        folder = self.unit_dir(unit)
        mine = unit.pairs
        if self.s.shard is not None:
            i, k = self.s.shard
            mine = [p for p in mine if p.index % k == i - 1]
        todo = [p for p in mine if not (folder / f"{p.key}.json").exists()]
        if todo and not self.s.report_only:
            chunks = [todo[s : s + self.s.batch_size]
                      for s in range(0, len(todo), self.s.batch_size)]
            with tqdm(total=len(mine), initial=len(mine) - len(todo), desc=unit.name,
                      disable=not self.s.progress, unit="pair") as bar:
                for k, computed in self.map_chunks(unit, chunks):
                    for info, rec in zip(chunks[k], computed, strict=True):
                        rec = {"pair": [str(info.pair.probe), str(info.pair.gallery)],
                               "same": info.same, **rec}
                        _write_json(folder / f"{info.key}.json", rec)
                    bar.update(len(chunks[k]))
        records = {}
        for p in unit.pairs:
            f = folder / f"{p.key}.json"
            if f.exists():
                records[p.key] = json.loads(f.read_text())
        return records

    def map_chunks(self, unit: Unit, chunks: list[list[PairInfo]]
                   ) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        """``(position, records)`` of every chunk of ``unit``: computed here, or on the
        engine's workers (:class:`UnitJob`), in any order; the caller writes the cache."""
        from xfr.engines import LocalEngine

        if self.s.engine is None or isinstance(self.s.engine, LocalEngine):
            for k, chunk in enumerate(chunks):
                yield k, unit.compute(chunk)
            return
        job = UnitJob(replace(self.s, engine=None), unit.name)
        items = [(chunk, {f: self.crops[f] for i in chunk
                          for f in (i.pair.probe, i.pair.gallery)}) for chunk in chunks]
        yield from self.s.engine.map(job, items)

    def unit_named(self, name: str) -> Unit:
        """The unit called ``name`` (its pairs as this object knows them)."""
        for unit in self.units():
            if unit.name == name:
                return unit
        raise KeyError(f"no unit {name!r}")

    # -- the run ----------------------------------------------------------------------------
    def check_methods(self) -> None:
        """Create every explainer once with its options, so that an unknown method or option
        fails now, not after an hour of work."""
        from xfr import registry

        uses_paper = bool({"paper", "attention"} & set(self.s.methods))
        for name in self.s.methods:
            if name in BUILTIN_METHODS:
                continue
            try:
                registry.create("explainer", name, **self.s.options.get(name, {}))
            except TypeError as exc:
                raise ValueError(f"explainer {name!r}: {exc}") from None
        if uses_paper:
            opts = self.paper_options(self.s.generators[0])
            try:
                registry.create("explainer", "paper", **opts)
            except TypeError as exc:
                raise ValueError(f"explainer 'paper': {exc}") from None
            registry.create("selector", str(opts["selector"]))
            for g in self.s.generators:
                registry.create("attention", g)

    def run(self) -> dict[str, Any] | None:
        """Compute everything missing; return the results (``None`` for a shard process)."""
        from xfr.api import load_verifier
        from xfr.engines import LocalEngine
        from xfr.evaluation.results import summarise

        if (self.s.engine is not None and not isinstance(self.s.engine, LocalEngine)
                and not isinstance(self.s.verifier, (str, Path))):
            raise ValueError("--engine ray needs the verifier as a name, NAME:SOURCE or model "
                             "folder (each worker loads it), not a verifier object")
        pairs = self.load_pairs()
        self.verifier = load_verifier(self.s.verifier)
        self.check_methods()
        self.fingerprint = model_fingerprint(self.verifier)
        self.crops, digests = self.align(pairs)
        # accuracy on every selected pair; explanations on the --limit subset
        self.all_infos = self.verify(self.verifier, pairs, self.crops, digests)
        chosen = set(limit_pairs(pairs, self.s.limit, self.s.seed))
        self.infos = [i for i in self.all_infos if i.index in chosen]
        if not self.infos:
            raise ValueError("no pair could be evaluated (no face aligned)")
        th = float(self.verifier.threshold)
        self.tp = [i for i in self.infos if i.same and is_positive(i.distance, th)]
        self.tn = [i for i in self.infos if not i.same and not is_positive(i.distance, th)]
        self.curve_pairs = self.tp + self.tn
        rng = np.random.default_rng(self.s.seed)
        # one seeded order per decision: a limit takes its first N pairs, so every smaller
        # limit (--method-limit) is part of every larger one and a run can be extended
        self._draw_order = (rng.permutation(len(self.tp)), rng.permutation(len(self.tn)))
        self.subset = self.baseline_pairs(self.s.baseline_limit)
        units = self.units()
        records = {u.name: self.run_unit(u) for u in units}
        self.coverage = {u.name: {"pairs": len(u.pairs), "done": len(records[u.name]),
                                  "cache": str(self.unit_dir(u))} for u in units}
        if self.s.shard is not None:
            return None
        return summarise(self, records)


@dataclass
class UnitJob:
    """A unit's chunks on an engine's workers (:class:`xfr.engines.Job`): each worker loads
    the verifier once; an item is ``(pairs, their aligned crops)``, its result the unit's
    records of those pairs, exactly what :meth:`Evaluation.run_unit` computes here."""

    settings: EvalSettings
    unit: str

    def setup(self) -> Evaluation:
        from xfr.api import load_verifier

        ev = Evaluation(self.settings)
        ev.verifier = load_verifier(self.settings.verifier)
        ev.infos, ev.curve_pairs, ev.subset = [], [], []
        return ev

    def compute(self, ev: Evaluation, item: tuple[list[PairInfo], dict[Path, np.ndarray]]
                ) -> list[dict[str, Any]]:
        chunk, crops = item
        ev.crops = crops
        return ev.unit_named(self.unit).compute(chunk)


__all__ = ["BASELINES", "BUILTIN_METHODS", "DEFAULT_GENERATORS", "DEFAULT_METHODS",
           "PAPER_EVAL_OPTIONS", "CurveSource", "EvalSettings", "Evaluation", "PairInfo",
           "UnitJob",
           "limit_pairs", "model_fingerprint", "pair_seed", "paper_defaults", "paper_labels",
           "parse_shard", "random_maps", "selector_tag"]
