"""Explain every pair of a list (``xfr explain --pairs``): resumable, batched, failure-tolerant.

What the driver does, whatever the engine (:mod:`xfr.engines`):

1. read the list (:func:`xfr.data.pairs.read_listed_pairs`: LFW ``pairs.txt``, CALFW style, or
   CSV ``probe,gallery[,same[,fold]]`` / a header naming ``probe, gallery, same, fold, id``);
   each pair gets a *stem*, its ``id`` or ``pair_NNNNN`` (0-based position in the list);
2. skip the pairs already done: ``OUT/<stem>.json`` (+ ``.npz``, + ``.png`` unless
   ``figures=False``) written for the same model (``notes.model.sha256``), the same
   configuration (``notes.batch.configuration``: method, its options, detector) and the same
   two input files;
3. cut the rest into chunks of ``pairs_per_batch`` pairs and hand them to the engine: per chunk
   the faces are aligned one by one (an unreadable image or a photo without a face fails that
   pair only), then explained with one :func:`xfr.explain_pairs` call; if that call fails, each
   pair of the chunk is explained alone, so one bad pair does not sink its chunk;
4. write each result as it comes (:meth:`xfr.Explanation.save`, exactly the files of
   ``xfr explain PROBE GALLERY``) and finally ``OUT/summary.csv``, one row per pair in list
   order (:data:`SUMMARY_COLUMNS`), failed pairs with their error.

The chunks are the same for every engine and every chunk runs the same code, so a
deterministic method gives the same arrays and the same summary (``seconds`` apart) locally
and on Ray.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xfr.defaults import DEFAULT_METHOD
from xfr.errors import InputError, InputWarning, OptionError, OutputError, UserError

#: The columns of ``summary.csv``, in order (README, "Many pairs").
SUMMARY_COLUMNS = ("index", "stem", "probe", "gallery", "status", "decision", "distance",
                   "threshold", "margin", "strategy", "label", "correct", "seconds", "error")
#: Errors of one pair that fail that pair only (bad image, no face, a model-pass failure);
#: anything else is a bug and stops the run.
PAIR_ERRORS: tuple[type[BaseException], ...] = (UserError, ValueError, OSError, RuntimeError)


@dataclass(frozen=True)
class BatchPair:
    """One pair of the list: its position, output stem, files and label (if any)."""

    index: int
    stem: str
    probe: str
    gallery: str
    same: bool | None = None


@dataclass
class PairOutcome:
    """What became of one pair: its explanation, or the error that stopped it."""

    index: int
    explanation: Any = None
    seconds: float = 0.0
    error: str | None = None


@dataclass
class BatchSettings:
    """Everything that defines one ``xfr explain --pairs`` run."""

    pairs: Path
    out: Path
    root: Path | None = None
    format: str = "auto"
    verifier: Any = "default"
    method: str = DEFAULT_METHOD
    #: The explainer's options (e.g. ``{"generator": "rollout"}``).
    options: dict[str, Any] = field(default_factory=dict)
    detector: str = "yunet"
    pairs_per_batch: int = 32
    #: Write the PNG figure of each pair too.
    figures: bool = True
    #: ``True``: a tqdm bar; ``False``: one plain line per chunk on stderr; ``None``: a bar on
    #: a terminal, plain lines otherwise.
    progress: bool | None = None
    #: Say nothing on stderr (the API's default).
    quiet: bool = False


@dataclass
class BatchResult:
    """The outcome of a run: every pair's summary row and how many were computed/reused."""

    rows: list[dict[str, Any]]
    computed: int
    reused: int
    failed: int
    summary: Path
    seconds: float

    @property
    def total(self) -> int:
        return len(self.rows)


# -- the list -------------------------------------------------------------------------------
def read_batch_pairs(path: str | Path, root: str | Path | None = None, format: str = "auto"
                     ) -> list[BatchPair]:
    """The pairs of a list with their output stems; ids (CSV ``id`` column) must be file
    names, unique, and not look like another pair's default ``pair_NNNNN``."""
    from xfr.data.pairs import read_listed_pairs

    listed = read_listed_pairs(path, root, format)
    out: list[BatchPair] = []
    seen: dict[str, int] = {}
    for i, p in enumerate(listed):
        stem = p.id if p.id else f"pair_{i:05d}"
        if p.id is not None and (Path(p.id).name != p.id or p.id in (".", "..")
                                 or p.id == "summary"):
            raise InputError(f"{path}: pair {i + 1} has id {p.id!r}, which is not a plain "
                             "file name (no folders; 'summary' is taken)")
        if stem in seen:
            raise InputError(f"{path}: pairs {seen[stem] + 1} and {i + 1} have the same name "
                             f"{stem!r}; ids must be unique")
        seen[stem] = i
        out.append(BatchPair(i, stem, str(p.probe), str(p.gallery), p.same))
    return out


def configuration(method: str, options: dict[str, Any], detector: str) -> dict[str, Any]:
    """What decides a pair's explanation besides the model and the images: the method, its
    full options (defaults included, when the explainer shows them) and the detector."""
    from xfr.api import make_explainer

    explainer = make_explainer(method, dict(options))
    resolved = getattr(explainer, "options", None)
    full = resolved if isinstance(resolved, dict) else options
    return {"method": method, "options": json.loads(json.dumps(full, sort_keys=True,
                                                                default=str)),
            "detector": detector}


def config_hash(config: dict[str, Any]) -> str:
    """SHA-1 of a :func:`configuration` (its canonical JSON)."""
    return hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()


def model_key(verifier: Any) -> str:
    """The model's identity as the explanations record it: ``notes.model.sha256``, or for a
    model without files the SHA-1 of its weights (:func:`xfr.evaluation.runner
    .model_fingerprint`)."""
    from xfr.api import model_info

    digest = model_info(verifier).get("sha256")
    if digest:
        return str(digest)
    from xfr.evaluation.runner import model_fingerprint

    return "fingerprint:" + model_fingerprint(verifier)


def done_before(out: Path, pair: BatchPair, model: str, config: str, figures: bool
                ) -> dict[str, Any] | None:
    """The saved JSON of ``pair`` if it is complete and was made by the same model and
    configuration from the same files, else ``None``."""
    js = out / f"{pair.stem}.json"
    if not js.is_file() or not js.with_suffix(".npz").is_file():
        return None
    if figures and not js.with_suffix(".png").is_file():
        return None
    try:
        doc = json.loads(js.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    notes = doc.get("notes") or {}
    batch = notes.get("batch") or {}
    inputs = notes.get("inputs") or {}
    if (batch.get("model") != model or batch.get("configuration") != config
            or inputs.get("probe") != pair.probe or inputs.get("gallery") != pair.gallery):
        return None
    found: dict[str, Any] = doc
    return found


# -- one chunk (runs on the engine's workers) -----------------------------------------------
def _error_text(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


@dataclass
class ExplainJob:
    """The work of one chunk of pairs (:class:`xfr.engines.Job`): align each face, explain
    the chunk in one batched call, or pair by pair when that call fails."""

    verifier: Any
    method: str
    options: dict[str, Any]
    detector: str

    def setup(self) -> Any:
        from xfr.api import load_verifier

        return load_verifier(self.verifier)

    def compute(self, state: Any, chunk: Sequence[BatchPair]) -> list[PairOutcome]:
        return explain_chunk(state, chunk, self.method, self.options, self.detector)


def explain_chunk(verifier: Any, chunk: Sequence[BatchPair], method: str,
                  options: dict[str, Any], detector: str) -> list[PairOutcome]:
    """Explain a chunk of pairs; each pair's :class:`PairOutcome` (in order). ``seconds`` of
    a pair: its own alignment plus its share of the chunk's batched call."""
    from xfr.api import prepare_with_boxes

    outcomes = [PairOutcome(p.index) for p in chunk]
    prepared: list[tuple[int, Any, Any, dict[str, Any]]] = []
    for k, p in enumerate(chunk):
        t0 = time.perf_counter()
        try:
            crops, boxes = prepare_with_boxes([p.probe, p.gallery], 112, detector)
        except PAIR_ERRORS as exc:
            outcomes[k].error = _error_text(exc)
        else:
            prepared.append((k, crops[0], crops[1], {"probe": boxes[0], "gallery": boxes[1]}))
        outcomes[k].seconds = time.perf_counter() - t0
    if not prepared:
        return outcomes

    def run(group: list[tuple[int, Any, Any, dict[str, Any]]]) -> None:
        from xfr.api import explain_pairs

        t0 = time.perf_counter()
        with warnings.catch_warnings():  # the crops were aligned above, from the photos
            warnings.filterwarnings("ignore", message=".*already aligned face crop",
                                    category=InputWarning)
            done = explain_pairs([(a, b) for _, a, b, _ in group], verifier, method,
                                 pairs_per_batch=len(group), detector=detector, **options)
        share = (time.perf_counter() - t0) / len(group)
        for (k, _, _, faces), e in zip(group, done, strict=True):
            p = chunk[k]
            e.notes["inputs"] = {"probe": p.probe, "gallery": p.gallery}
            e.notes["faces"] = faces
            outcomes[k].explanation = e
            outcomes[k].seconds += share

    try:
        run(prepared)
    except PAIR_ERRORS:
        if len(prepared) == 1:
            raise_or_record(run, prepared[0], outcomes)
        else:
            for one in prepared:
                raise_or_record(run, one, outcomes)
    return outcomes


def raise_or_record(run: Callable[[list[Any]], None], one: tuple[int, Any, Any, Any],
                    outcomes: list[PairOutcome]) -> None:
    """Explain one prepared pair alone; its error, if any, goes into its outcome."""
    try:
        run([one])
    except PAIR_ERRORS as exc:
        outcomes[one[0]].error = _error_text(exc)


# -- the driver -----------------------------------------------------------------------------
def summary_row(pair: BatchPair, doc: dict[str, Any] | None, seconds: float | None,
                error: str | None) -> dict[str, Any]:
    """One ``summary.csv`` row: from a saved explanation's JSON ``doc``, or a failure."""
    row: dict[str, Any] = {c: "" for c in SUMMARY_COLUMNS}
    row.update(index=pair.index, stem=pair.stem, probe=pair.probe, gallery=pair.gallery)
    if pair.same is not None:
        row["label"] = "same" if pair.same else "different"
    if doc is None:
        row.update(status="failed", error=error or "unknown error",
                   seconds="" if seconds is None else f"{seconds:.3f}")
        return row
    distance, threshold = float(doc["distance"]), float(doc["threshold"])
    row.update(status="ok", decision=doc["decision"], distance=repr(distance),
               threshold=repr(threshold), margin=repr(abs(distance - threshold)),
               strategy=doc.get("strategy") or "",
               seconds=f"{float(seconds or 0.0):.3f}")
    if pair.same is not None:
        row["correct"] = str((doc["decision"] == "positive") == pair.same).lower()
    return row


def write_summary(out: Path, rows: list[dict[str, Any]]) -> Path:
    """``OUT/summary.csv`` (rows sorted by list position), written atomically."""
    path = out / "summary.csv"
    tmp = out / f".summary.{os.getpid()}.csv.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(SUMMARY_COLUMNS), lineterminator="\n")
        w.writeheader()
        for row in sorted(rows, key=lambda r: int(r["index"])):
            w.writerow(row)
    os.replace(tmp, path)
    return path


def save_outcome(out: Path, pair: BatchPair, e: Any, seconds: float, model: str,
                 config: str, figures: bool) -> dict[str, Any]:
    """Write one explanation (PNG unless ``figures`` is false, JSON, npz) with its batch
    notes; returns the JSON's content."""
    e.notes["batch"] = {"model": model, "configuration": config,
                        "seconds": round(seconds, 6)}
    _, js = e.save(out, pair.stem, figure=figures)
    saved: dict[str, Any] = json.loads(js.read_text(encoding="utf-8"))
    return saved


class _Progress:
    """A tqdm bar on a terminal, else plain lines on stderr: one per chunk, at most one per
    :attr:`EVERY` seconds, and the last."""

    EVERY = 5.0

    def __init__(self, total: int, initial: int, mode: bool | None, quiet: bool,
                 desc: str) -> None:
        self.total, self.count, self.quiet, self.desc = total, initial, quiet, desc
        self.bar = None
        self.last = -self.EVERY
        use_bar = sys.stderr.isatty() if mode is None else mode
        if not quiet and use_bar:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit="pair")

    def update(self, n: int, failed: int) -> None:
        self.count += n
        if self.bar is not None:
            self.bar.update(n)
        elif not self.quiet and (self.count >= self.total
                                 or time.monotonic() - self.last >= self.EVERY):
            self.last = time.monotonic()
            print(f"xfr: {self.desc}: {self.count}/{self.total} pairs done"
                  + (f" ({failed} failed)" if failed else ""), file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def check_settings(s: BatchSettings) -> list[BatchPair]:
    """Everything checked before any model pass: the options, the output folder, the list
    and that its images are where it says (if none is, ``--root`` is wrong)."""
    from xfr.align import check_detector
    from xfr.api import check_verifier_object, make_explainer, positive_int

    positive_int("pairs_per_batch", s.pairs_per_batch)
    check_detector(s.detector)
    if not isinstance(s.verifier, (str, Path)):
        check_verifier_object(s.verifier)
    make_explainer(s.method, dict(s.options))
    out = Path(s.out)
    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"--out {out}: {parent} is a file, not a folder")
            break
    pairs = read_batch_pairs(s.pairs, s.root, s.format)
    if not any(Path(f).is_file() for p in pairs for f in (p.probe, p.gallery)):
        where = s.root if s.root is not None else Path(s.pairs).parent
        raise FileNotFoundError(f"none of the {2 * len(pairs)} image files of {s.pairs} is "
                                f"under {where} (e.g. {pairs[0].probe}); check --root")
    return pairs


def run_batch(settings: BatchSettings, engine: Any = None) -> BatchResult:
    """Explain every pair of ``settings.pairs`` into ``settings.out`` with ``engine``
    (:class:`xfr.engines.LocalEngine` by default); returns the summary. Pairs done before
    (same model, configuration and files) are reused, failed pairs are recorded, not raised;
    bad options raise :mod:`xfr.errors` exceptions before any model pass."""
    from xfr.api import load_verifier
    from xfr.engines import LocalEngine, RayEngine

    s = settings
    started = time.perf_counter()
    engine = engine if engine is not None else LocalEngine()
    pairs = check_settings(s)
    if isinstance(engine, RayEngine) and not isinstance(s.verifier, (str, Path)):
        raise OptionError("--engine ray needs the verifier as a name, NAME:SOURCE or model "
                          "folder (each worker loads it), not a verifier object")
    engine.start()  # a cluster that cannot be joined fails now, before the model loads
    out = Path(s.out)
    out.mkdir(parents=True, exist_ok=True)
    verifier = load_verifier(s.verifier)
    model = model_key(verifier)
    config = config_hash(configuration(s.method, s.options, s.detector))
    rows: dict[int, dict[str, Any]] = {}
    todo: list[BatchPair] = []
    for p in pairs:
        doc = done_before(out, p, model, config, s.figures)
        if doc is None:
            todo.append(p)
        else:
            rows[p.index] = summary_row(p, doc, doc["notes"]["batch"].get("seconds"), None)
    reused = len(rows)
    chunks = [todo[i:i + s.pairs_per_batch] for i in range(0, len(todo), s.pairs_per_batch)]
    if not s.quiet:
        print(f"xfr: {len(pairs)} pairs: {reused} done before, {len(todo)} to explain "
              f"({s.method}) on {engine.describe()}", file=sys.stderr, flush=True)
    job = ExplainJob(s.verifier if isinstance(engine, RayEngine) else verifier, s.method,
                     dict(s.options), s.detector)
    failed = 0
    bar = _Progress(len(pairs), reused, s.progress, s.quiet, f"explaining ({s.method})")
    try:
        for k, outcomes in engine.map(job, chunks):
            for p, o in zip(chunks[k], outcomes, strict=True):
                if o.explanation is None:
                    failed += 1
                    rows[p.index] = summary_row(p, None, o.seconds, o.error)
                    continue
                try:
                    doc = save_outcome(out, p, o.explanation, o.seconds, model, config,
                                       s.figures)
                except PAIR_ERRORS as exc:  # e.g. a figure that cannot be drawn
                    failed += 1
                    rows[p.index] = summary_row(p, None, o.seconds, _error_text(exc))
                    continue
                rows[p.index] = summary_row(p, doc, o.seconds, None)
            bar.update(len(chunks[k]), failed)
    finally:
        bar.close()
        if rows:
            write_summary(out, list(rows.values()))
    missing = [p.stem for p in pairs if p.index not in rows]
    if missing:  # an engine that lost work is a bug, never a silent gap
        raise RuntimeError(f"{len(missing)} pair(s) came back from no worker: {missing[:5]}")
    path = write_summary(out, list(rows.values()))
    return BatchResult([rows[p.index] for p in pairs], len(todo), reused, failed, path,
                       time.perf_counter() - started)


__all__ = ["SUMMARY_COLUMNS", "BatchPair", "BatchResult", "BatchSettings", "ExplainJob",
           "PairOutcome", "check_settings", "configuration", "explain_chunk", "model_key",
           "read_batch_pairs", "run_batch", "summary_row", "write_summary"]
