"""The HTML report of a folder of results (``xfr report DIR``): a static site in ``DIR/report/``
that works offline from the file system (no server, no CDN).

- ``index.html``: every pair of the folder (each saved explanation ``<stem>.json`` +
  ``<stem>.npz``, and the rows of ``summary.csv`` when the folder has one, failed pairs
  included) with thumbnails, decision, distance, margin to the threshold, strategy, label and
  correctness where known; sortable and filterable in the page;
- ``pair-<stem>.html``: one pair: the photos with the detected face boxes (when the photo files
  are still there), the aligned faces, attention maps, Otsu masks, every candidate mask with its
  removed area, distances and score (or why it was not eligible), the chosen heatmap over the
  face with an opacity slider and a colour bar, and the pair's deletion/insertion curves when an
  evaluation of this folder computed them; previous/next links;
- ``evaluation.html`` (an ``xfr evaluate`` folder, ``results.json``) and ``sanity.html``
  (an ``xfr sanity`` folder, ``sanity.md``): accuracy, Table 1, the curves, the paired
  differences and the sanity check, with every figure inline.

Images are PNG files beside the pages (``img/``), styles and scripts in ``assets/``; the
templates are Jinja2 files shipped in this package (``xfr/site/templates``).
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from xfr.errors import OutputError
from xfr.interfaces.vocabulary import NEGATIVE, POSITIVE, is_positive

#: The file that marks a folder as written by this module (so that it may be replaced).
MARKER = ".xfr-report"
#: The report's folder inside the results folder.
REPORT_FOLDER = "report"
#: The static files copied into ``report/assets/``.
ASSETS = ("report.css", "report.js")


@dataclass
class PairRow:
    """One pair of the index: its saved explanation (if any) and what ``summary.csv`` says."""

    stem: str
    order: int
    probe: str = ""
    gallery: str = ""
    status: str = "ok"
    decision: str | None = None
    distance: float | None = None
    threshold: float | None = None
    method: str | None = None
    strategy: str | None = None
    label: str | None = None
    correct: bool | None = None
    error: str | None = None
    seconds: float | None = None
    #: The saved explanation's JSON, when there is one.
    json_path: Path | None = None
    page: str | None = None
    thumbs: list[str] = field(default_factory=list)

    @property
    def margin(self) -> float | None:
        """``|distance - threshold|``: how far the decision is from flipping."""
        if self.distance is None or self.threshold is None:
            return None
        return abs(self.distance - self.threshold)

    @property
    def verdict(self) -> str:
        if self.decision == POSITIVE:
            return "same person"
        if self.decision == NEGATIVE:
            return "different person"
        return ""


# -- reading a folder ---------------------------------------------------------------------------
def _mapping(value: Any) -> dict[str, Any]:
    """``value`` if it is a dict (a saved explanation's notes, or one of their entries), else
    an empty one."""
    return value if isinstance(value, dict) else {}


def _float(text: str | None) -> float | None:
    try:
        v = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return v if v is None or math.isfinite(v) else None


def _bool(text: str | None) -> bool | None:
    t = (text or "").strip().lower()
    return True if t in ("true", "1", "yes") else False if t in ("false", "0", "no") else None


def read_summary(directory: Path) -> list[dict[str, str]]:
    """The rows of ``directory/summary.csv`` (``xfr explain --pairs``), or ``[]``."""
    path = directory / "summary.csv"
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [dict(row) for row in csv.DictReader(f)]


def _explanation_doc(path: Path) -> dict[str, Any] | None:
    """The JSON of a saved explanation (``format: xfr-explanation``), else ``None``."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != "xfr-explanation":
        return None
    return doc


def collect(directory: Path) -> list[PairRow]:
    """Every pair of ``directory``: the rows of ``summary.csv`` in list order (failed pairs
    too), then the saved explanations it does not list, by name."""
    docs = {p.stem: (p, d) for p in sorted(directory.glob("*.json"))
            if (d := _explanation_doc(p)) is not None}
    rows: list[PairRow] = []
    seen: set[str] = set()
    for i, s in enumerate(read_summary(directory)):
        stem = s.get("stem") or ""
        if not stem or stem in seen:
            continue
        seen.add(stem)
        index = _float(s.get("index"))
        row = PairRow(stem=stem, order=int(index) if index is not None else i,
                      probe=s.get("probe") or "", gallery=s.get("gallery") or "",
                      status=s.get("status") or "ok", decision=s.get("decision") or None,
                      distance=_float(s.get("distance")), threshold=_float(s.get("threshold")),
                      strategy=s.get("strategy") or None, label=s.get("label") or None,
                      correct=_bool(s.get("correct")), error=s.get("error") or None,
                      seconds=_float(s.get("seconds")))
        if stem in docs:
            _fill_from_doc(row, *docs[stem])
        elif row.status == "ok":
            row.status, row.error = "missing", f"{stem}.json is not in the folder"
        rows.append(row)
    start = max((r.order for r in rows), default=-1) + 1
    for k, (stem, (path, doc)) in enumerate(sorted(docs.items())):
        if stem in seen:
            continue
        row = PairRow(stem=stem, order=start + k)
        _fill_from_doc(row, path, doc)
        rows.append(row)
    return rows


def _fill_from_doc(row: PairRow, path: Path, doc: dict[str, Any]) -> None:
    row.json_path = path
    row.decision = doc.get("decision")
    row.distance = _float(str(doc.get("distance")))
    row.threshold = _float(str(doc.get("threshold")))
    row.method = doc.get("method")
    row.strategy = doc.get("strategy")
    inputs = (doc.get("notes") or {}).get("inputs") or {}
    row.probe = row.probe or str(inputs.get("probe", ""))
    row.gallery = row.gallery or str(inputs.get("gallery", ""))
    if row.label is not None and row.correct is None and row.decision:
        row.correct = (row.decision == POSITIVE) == (row.label == "same")


# -- evaluation curves of single pairs ----------------------------------------------------------
def _pair_key(probe: str, gallery: str) -> tuple[str, str]:
    """The last two path components of each file (``person/photo.jpg``): the same pair whatever
    the image root it was given with."""
    def tail(p: str) -> str:
        parts = Path(p).parts
        return "/".join(parts[-2:])
    return tail(probe), tail(gallery)


def evaluation_curves(directory: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Per pair, the deletion/insertion distances an ``xfr evaluate`` run into ``directory``
    computed (its cache, named in ``results.json``): ``{"fractions", "threshold", "curves":
    [{"label", "mode", "values"}]}`` keyed by :func:`_pair_key`."""
    path = directory / "results.json"
    if not path.is_file():
        return {}
    try:
        r = json.loads(path.read_text(encoding="utf-8"))
        fractions = [float(f) for f in r["fractions"]]
        threshold = float(r["model"]["threshold"])
        coverage = r.get("coverage", {})
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for unit, info in coverage.items():
        folder = Path(str(info.get("cache", "")))
        if not folder.is_absolute():
            folder = directory / folder if (directory / folder).is_dir() else folder
        if not folder.is_dir():
            continue
        for f in sorted(folder.glob("*.json")):
            try:
                rec = json.loads(f.read_text(encoding="utf-8"))
                key = _pair_key(*rec["pair"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            for name, modes in (rec.get("curves") or {}).items():
                if not isinstance(modes, dict):
                    continue
                label = unit if name == unit else f"{unit} {name}"
                entry = out.setdefault(key, {"fractions": fractions, "threshold": threshold,
                                             "curves": []})
                for mode, values in modes.items():
                    entry["curves"].append({"label": label, "mode": mode,
                                            "values": [float(v) for v in values]})
    return out


# -- one pair -----------------------------------------------------------------------------------
def _fmt(x: float | None, digits: int = 4) -> str:
    return "" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _distances_text(d: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in d.items())


def _notes_rows(e: Any) -> list[tuple[str, str]]:
    notes = e.notes if isinstance(e.notes, dict) else {}
    rows = []
    model = notes.get("model") or {}
    if model:
        sha = model.get("sha256")
        rows.append(("model", f"{model.get('verifier')} ({model.get('plugin')}"
                     + (f", sha256 {str(sha)[:12]}" if sha else "") + ")"))
    for key in ("verifier", "generator", "target", "selector", "fill"):
        if notes.get(key) is not None:
            rows.append((key, str(notes[key])))
    seconds = notes.get("seconds_per_pair")
    if isinstance(seconds, dict) and seconds:
        total = sum(float(v) for v in seconds.values() if isinstance(v, (int, float)))
        rows.append(("seconds", f"{total:.3f} s ("
                     + ", ".join(f"{k} {float(v):.3f}" for k, v in seconds.items()
                                 if isinstance(v, (int, float))) + ")"))
    if notes.get("unsupported"):
        rows.append(("no heatmap", str(notes["unsupported"])))
    return rows


def pair_images(e: Any, img: Path, prefix: str) -> dict[str, Any]:
    """Write the PNGs of one explanation into ``img`` and return their names (relative to the
    page, ``prefix`` + name) by role."""
    from xfr.site import images

    def put(array: np.ndarray, name: str) -> str:
        images.save_png(array, img / name)
        return prefix + quote(name)

    notes = _mapping(e.notes)
    inputs = _mapping(notes.get("inputs"))
    faces_found = _mapping(notes.get("faces"))
    sides = []
    for i, side in enumerate(("probe", "gallery")):
        # every key the template reads, None until filled (its environment is strict)
        s: dict[str, Any] = {"side": side, "input": str(inputs.get(side, "")),
                             "name": Path(str(inputs.get(side, side))).name,
                             **dict.fromkeys(("face", "gray", "attention", "mask", "heat"))}
        box = faces_found.get(side)
        path = inputs.get(side)
        photo = (images.photo_with_box(path, box)
                 if isinstance(box, dict) and isinstance(path, str) else None)
        s["photo"] = put(photo, f"{side}-photo.png") if photo is not None else None
        if s["photo"] is None:
            if not isinstance(path, str) or path.startswith("<"):
                s["photo_note"] = "the input was an array, not a file"
            elif not isinstance(box, dict):
                s["photo_note"] = "the input was an aligned 112x112 crop"
            else:
                s["photo_note"] = f"photo file not found: {path}"
        if e.faces is not None:
            s["face"] = put(e.faces[i], f"{side}-face.png")
            s["gray"] = put(images.gray(e.faces[i]), f"{side}-gray.png")
        if e.attention_maps is not None:
            s["attention"] = put(images.heat_rgb(e.attention_maps[i]), f"{side}-attention.png")
        if e.masks is not None:
            s["mask"] = put(np.asarray(e.masks[i], dtype=bool), f"{side}-otsu.png")
        if e.heatmaps is not None:
            s["heat"] = put(images.heat_rgb(e.heatmaps[i]), f"{side}-heat.png")
            if e.faces is not None:
                from xfr.overlay import overlay

                s["overlay"] = put(overlay(e.faces[i], e.heatmaps[i]), f"{side}-overlay.png")
        sides.append(s)
    candidates = []
    for k, c in enumerate(e.candidates):
        entry: dict[str, Any] = {
            "name": c.name, "chosen": c.name == e.strategy, "eligible": c.eligible,
            "removed_area": _fmt(c.removed_area, 3), "distances": _distances_text(c.distances),
            "score": _fmt(c.score, 4), "reason": c.reason,
            "mask": put(np.asarray(c.mask, dtype=bool), f"candidate-{k}-mask.png")}
        if e.faces is not None:
            entry["masked"] = [put(images.masked(e.faces[j], c.mask),
                                   f"candidate-{k}-{side}.png")
                               for j, side in enumerate(("probe", "gallery"))]
        candidates.append(entry)
    return {"sides": sides, "candidates": candidates}


def pair_context(e: Any, images_: dict[str, Any], stem: str) -> dict[str, Any]:
    """Everything the pair template shows about ``e`` besides navigation and images."""
    rel = "<" if is_positive(e.distance, e.threshold) else ">="
    names = " vs ".join(s["name"] for s in images_["sides"])
    return {
        "stem": stem, "title": names or stem, "decision": e.decision,
        "verdict": "same person" if e.decision == POSITIVE else "different person",
        "distance": _fmt(e.distance), "threshold": _fmt(e.threshold), "relation": rel,
        "margin": _fmt(abs(e.distance - e.threshold)), "method": e.method,
        "strategy": e.strategy, "selection_reason": e.selection_reason,
        "has_heatmap": e.heatmaps is not None, "notes": _notes_rows(e),
        "score_kind": "SM+ (eq. 1)" if e.decision == POSITIVE else "SM- (eq. 2)",
        **images_,
    }


def _environment() -> Any:
    try:
        import jinja2
    except ImportError:  # pragma: no cover - jinja2 is a dependency
        from xfr.errors import MissingDependencyError

        raise MissingDependencyError("the HTML report needs jinja2: pip install jinja2") from None
    return jinja2.Environment(loader=jinja2.PackageLoader("xfr.site", "templates"),
                              autoescape=jinja2.select_autoescape(("html", "j2")),
                              trim_blocks=True, lstrip_blocks=True,
                              undefined=jinja2.StrictUndefined)


def copy_assets(out: Path) -> None:
    """The stylesheet and script into ``out/assets/``."""
    from importlib.resources import files

    folder = out / "assets"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ASSETS:
        (folder / name).write_bytes(files("xfr.site").joinpath("static").joinpath(name)
                                    .read_bytes())


def write_pair_page(e: Any, out: Path, stem: str, page: str, *, home: dict[str, str],
                    prev: dict[str, str] | None = None, next_: dict[str, str] | None = None,
                    row: PairRow | None = None, curves: dict[str, Any] | None = None,
                    env: Any = None, extra: dict[str, Any] | None = None) -> Path:
    """Write one pair's page ``out/page`` (images under ``out/img/<stem>/``); the assets must
    be in ``out/assets`` (:func:`copy_assets`) unless ``extra`` names another ``assets``
    URL."""
    from xfr.site import images

    env = env or _environment()
    img = out / "img" / stem
    prefix = f"img/{quote(stem)}/"
    ctx = pair_context(e, pair_images(e, img, prefix), stem)
    ctx["curves"] = None
    if curves and curves.get("curves"):
        images.curves_png(curves["curves"], curves["fractions"], curves["threshold"],
                          img / "curves.png")
        ctx["curves"] = prefix + "curves.png"
    images.save_png(images.colorbar(), out / "img" / "colorbar.png")
    ctx.update(home=home, prev=prev, next=next_, row=row, colorbar="img/colorbar.png")
    ctx.update(extra or {})
    path = out / page
    path.write_text(env.get_template("pair.html.j2").render(**ctx), encoding="utf-8")
    return path


# -- evaluation and sanity folders --------------------------------------------------------------
def _copy_figures(directory: Path, names: list[str], out: Path) -> dict[str, str]:
    folder = out / "img" / "evaluation"
    folder.mkdir(parents=True, exist_ok=True)
    srcs = {}
    for name in names:
        shutil.copyfile(directory / name, folder / name)
        srcs[name] = f"img/evaluation/{quote(name)}"
    return srcs


def _differences(directory: Path) -> list[dict[str, str]]:
    path = directory / "differences.csv"
    if not path.is_file() or path.stat().st_size == 0:
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [dict(r) for r in csv.DictReader(f)]


def write_evaluation_page(directory: Path, out: Path, env: Any) -> Path | None:
    """``out/evaluation.html`` for an ``xfr evaluate`` folder (``results.json``), else
    ``None``."""
    from xfr.site.markdown import to_html

    if not (directory / "results.json").is_file() or not (directory / "table1.md").is_file():
        return None
    sections = []
    for name, title in (("accuracy.md", "Verification accuracy"), ("table1.md", "Table 1"),
                        ("deletion.md", "Deletion and insertion curves")):
        if (directory / name).is_file():
            sections.append({"id": name.split(".")[0], "title": title,
                             "html": to_html((directory / name).read_text(encoding="utf-8"))})
    figures = sorted(p.name for p in directory.glob("*.png"))
    srcs = _copy_figures(directory, figures, out)
    command = (directory / "command.txt").read_text(encoding="utf-8") \
        if (directory / "command.txt").is_file() else ""
    diffs = _differences(directory)
    for d in diffs:
        for k in ("delta", "ci_low", "ci_high"):
            d[k] = _fmt(_float(d.get(k)), 3)
    sanity = sanity_section(directory, out)
    path = out / "evaluation.html"
    path.write_text(env.get_template("evaluation.html.j2").render(
        title=f"Evaluation: {directory.resolve().name}", sections=sections,
        figures=[{"name": n, "src": s} for n, s in srcs.items()], command=command,
        differences=diffs, sanity=sanity), encoding="utf-8")
    return path


def sanity_section(directory: Path, out: Path) -> dict[str, Any] | None:
    """The sanity check of ``directory`` (``sanity.md`` and its figures), if it has one."""
    from xfr.site.markdown import to_html

    if not (directory / "sanity.md").is_file():
        return None
    figures = sorted(p.name for p in directory.glob("sanity*.png"))
    srcs = _copy_figures(directory, figures, out)
    return {"html": to_html((directory / "sanity.md").read_text(encoding="utf-8")),
            "figures": [{"name": n, "src": s} for n, s in srcs.items()]}


# -- the site -----------------------------------------------------------------------------------
def prepare_output(out: Path) -> None:
    """Make ``out`` an empty report folder: refuse a file, or a non-empty folder that this
    module did not write (:class:`~xfr.errors.OutputError`)."""
    if out.exists():
        if not out.is_dir():
            raise OutputError(f"cannot write the report into {out}: it is a file")
        if any(out.iterdir()):
            if not (out / MARKER).is_file():
                raise OutputError(f"{out} exists and was not written by xfr report: move it "
                                  "away or give another --out")
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by xfr report; replaced whenever it runs again\n")


def check_folder(directory: Path) -> Path:
    """``directory`` if it is a folder with something to report, else a one-line error."""
    from xfr.errors import InputError

    if not directory.exists():
        raise FileNotFoundError(f"no such folder: {directory}")
    if not directory.is_dir():
        raise NotADirectoryError(f"not a folder: {directory}")
    has = (any(_explanation_doc(p) is not None for p in directory.glob("*.json"))
           or (directory / "summary.csv").is_file() or (directory / "results.json").is_file()
           or (directory / "sanity.md").is_file())
    if not has:
        raise InputError(f"{directory} holds no saved explanation (<stem>.json + .npz), no "
                         "summary.csv, no evaluation (results.json) and no sanity check "
                         "(sanity.md): nothing to report")
    return directory


def write_site(directory: str | Path, out: str | Path | None = None) -> Path:
    """Write the report of ``directory`` into ``out`` (default ``directory/report``); returns
    the path of its ``index.html``."""
    from xfr.explanation import Explanation

    directory = check_folder(Path(directory))
    out = Path(out) if out is not None else directory / REPORT_FOLDER
    prepare_output(out)
    env = _environment()
    copy_assets(out)
    rows = collect(directory)
    curves = evaluation_curves(directory) if any(r.json_path for r in rows) else {}
    pages = [r for r in rows if r.json_path is not None]
    for r in pages:
        r.page = f"pair-{r.stem}.html"
    for k, r in enumerate(pages):
        assert r.json_path is not None and r.page is not None
        try:
            e = Explanation.load(r.json_path)
        except (OSError, ValueError, KeyError) as exc:
            r.status, r.error, r.page = "unreadable", f"{type(exc).__name__}: {exc}", None
            continue
        nav = [pages[k - 1] if k > 0 else None, pages[k + 1] if k + 1 < len(pages) else None]
        prev, next_ = ({"href": quote(p.page), "text": p.stem} if p and p.page else None
                       for p in nav)
        write_pair_page(e, out, r.stem, r.page, home={"href": "index.html", "text": "all pairs"},
                        prev=prev, next_=next_, row=r,
                        curves=curves.get(_pair_key(r.probe, r.gallery)), env=env)
        r.thumbs = [f"img/{quote(r.stem)}/{side}-overlay.png" for side in ("probe", "gallery")
                    if (out / "img" / r.stem / f"{side}-overlay.png").is_file()]
        if not r.thumbs:
            r.thumbs = [f"img/{quote(r.stem)}/{side}-face.png" for side in ("probe", "gallery")
                        if (out / "img" / r.stem / f"{side}-face.png").is_file()]
    evaluation = write_evaluation_page(directory, out, env)
    sanity = None
    if evaluation is None and (directory / "sanity.md").is_file():
        sanity = out / "sanity.html"
        sanity.write_text(env.get_template("evaluation.html.j2").render(
            title=f"Sanity check: {directory.resolve().name}", sections=[], figures=[],
            command="", differences=[], sanity=sanity_section(directory, out)),
            encoding="utf-8")
    for r in rows:
        if r.page and not (out / r.page).is_file():
            r.page = None
    index = out / "index.html"
    counts = {"pairs": len(rows), "pages": sum(1 for r in rows if r.page),
              "failed": sum(1 for r in rows if r.status != "ok"),
              "wrong": sum(1 for r in rows if r.correct is False)}
    index.write_text(env.get_template("index.html.j2").render(
        title=f"xfr report: {directory.resolve().name}", rows=rows, counts=counts,
        fmt=_fmt, quote=quote, summary=(directory / "summary.csv").is_file(),
        evaluation=evaluation.name if evaluation else None,
        sanity=sanity.name if sanity else None,
        labels=any(r.label for r in rows)), encoding="utf-8")
    return index


__all__ = ["MARKER", "REPORT_FOLDER", "PairRow", "check_folder", "collect", "copy_assets",
           "evaluation_curves", "pair_context", "pair_images", "prepare_output", "read_summary",
           "write_evaluation_page", "write_pair_page", "write_site"]
