"""Pair-list readers for face-verification benchmarks (paper Sec. 4: LFW and its variants).

Three formats, each read into :class:`xfr.data.lfw.Pair` ``(probe, gallery, same, fold)``:

``lfw``
    LFW View 2 ``pairs.txt``: a header ``<folds> <pairs per fold>`` then, per fold, positive
    lines ``Name n1 n2`` and negative lines ``Name1 n1 Name2 n2``. Images are
    ``<root>/<Name>/<Name>_NNNN.jpg`` (``<root>/lfw-deepfunneled/...`` is found too). Folds are
    kept (1-based). Reuses :func:`xfr.data.lfw.read_pairs`.
``calfw``
    The CALFW / CPLFW / SLLFW style: one image per line, ``<file> <label>``, two consecutive
    lines per pair with the same label (1 = same person, 0 = different). Files are looked up
    as ``<root>/<file>`` and, failing that, in LFW's layout ``<root>/<Name>/<file>``.
    These lists carry no folds (``fold = 0``).
``csv``
    A plain CSV (``.tsv``: tab-separated) with columns ``probe, gallery, same`` and an optional
    ``fold``; a header row naming the columns is optional. ``same`` is 1/0, true/false, yes/no
    or same/different. Relative paths are relative to ``root``.

Every malformed line raises ``ValueError`` naming the file and the line number.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from xfr.data.lfw import Pair, read_pairs, read_text_lines

FORMATS = ("auto", "lfw", "calfw", "csv")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_TRUE = {"1", "true", "yes", "same", "positive", "match"}
_FALSE = {"0", "false", "no", "different", "negative", "mismatch", "-1"}


def _parse_same(value: str, where: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(f"{where}: label must be 1/0 (same/different), got {value!r}")


def _is_image_name(token: str) -> bool:
    return token.lower().endswith(IMAGE_SUFFIXES)


def detect_format(path: str | Path) -> str:
    """Guess the format of a pair list from its suffix and its first non-empty line."""
    path = Path(path)
    if path.suffix.lower() in (".csv", ".tsv"):
        return "csv"
    for line in read_text_lines(path):
        parts = line.split()
        if not parts:
            continue
        if len(parts) == 2 and all(p.lstrip("-").isdigit() for p in parts):
            return "lfw"  # the "<folds> <pairs per fold>" header
        if len(parts) in (3, 4) and not _is_image_name(parts[0]):
            return "lfw"
        if len(parts) == 2 and _is_image_name(parts[0]):
            return "calfw"
        if "," in line:
            return "csv"
        raise ValueError(
            f"{path}: cannot tell the pair-list format from its first line {line!r}; "
            f"pass format= one of {FORMATS[1:]}"
        )
    raise ValueError(f"{path}: empty pair list")


def _resolve(root: Path, name: str) -> Path:
    """``root/name``, else LFW's layout ``root/<Name>/name`` (Name = file stem minus ``_NNNN``)."""
    direct = root / name
    if direct.exists() or "/" in name:
        return direct
    stem = Path(name).stem
    person = stem.rsplit("_", 1)[0] if "_" in stem else stem
    nested = root / person / name
    return nested if nested.exists() else direct


def read_calfw_pairs(path: str | Path, root: str | Path) -> list[Pair]:
    """CALFW/CPLFW/SLLFW style: ``<file> <label>`` per line, two lines per pair."""
    path, root = Path(path), Path(root)
    entries: list[tuple[int, str, bool]] = []
    for lineno, line in enumerate(read_text_lines(path), start=1):
        parts = line.split()
        if not parts:
            continue
        where = f"{path}:{lineno}"
        if len(parts) != 2 or not _is_image_name(parts[0]):
            raise ValueError(f"{where}: expected '<image file> <label>', got {line!r}")
        entries.append((lineno, parts[0], _parse_same(parts[1], where)))
    if not entries:
        raise ValueError(f"{path}: empty pair list")
    if len(entries) % 2:
        raise ValueError(
            f"{path}:{entries[-1][0]}: odd number of image lines ({len(entries)}); "
            "each pair takes two lines"
        )
    pairs: list[Pair] = []
    for (la, fa, sa), (lb, fb, sb) in zip(entries[::2], entries[1::2], strict=True):
        if sa != sb:
            raise ValueError(
                f"{path}:{lb}: the two lines of a pair (lines {la} and {lb}) disagree on the label"
            )
        pairs.append(Pair(_resolve(root, fa), _resolve(root, fb), sa, 0))
    return pairs


def read_csv_pairs(path: str | Path, root: str | Path) -> list[Pair]:
    """Plain CSV/TSV ``probe, gallery, same[, fold]`` with an optional header row."""
    return [Pair(p.probe, p.gallery, bool(p.same), p.fold)
            for p in _read_csv(Path(path), Path(root), labels=True)]


@dataclass(frozen=True)
class ListedPair:
    """A pair of a list whose labels are optional (``xfr explain --pairs``): ``same`` is
    ``None`` when the list gives no label, ``id`` the list's own name of the pair (CSV ``id``
    column), if any."""

    probe: Path
    gallery: Path
    same: bool | None
    fold: int
    id: str | None = None


def _read_csv(path: Path, root: Path, labels: bool) -> list[ListedPair]:
    """The rows of a CSV/TSV pair list. Without a header the columns are
    ``probe,gallery[,same[,fold]]`` (``same`` required when ``labels``); a header row names
    any of ``probe, gallery, same, fold, id`` (``probe`` and ``gallery`` required)."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    rows = list(csv.reader(io.StringIO("\n".join(read_text_lines(path))), delimiter=delimiter))
    columns = {"probe": 0, "gallery": 1, "same": 2, "fold": 3}
    known = ("probe", "gallery", "same", "fold", "id")
    pairs: list[ListedPair] = []
    first = True
    for lineno, row in enumerate(rows, start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        where = f"{path}:{lineno}"
        if first:
            first = False
            lowered = [c.lower() for c in cells]
            if "probe" in lowered and "gallery" in lowered:
                unknown = set(lowered) - set(known)
                if unknown:
                    raise ValueError(f"{where}: unknown column(s) {sorted(unknown)}; "
                                     f"known: {list(known)}")
                if labels and "same" not in lowered:
                    raise ValueError(f"{where}: the header names no 'same' column; this "
                                     "command needs a label per pair (1/0, same/different)")
                columns = {name: lowered.index(name) for name in known if name in lowered}
                continue
        least = 3 if labels and "same" in columns else 2
        if len(cells) < least or len(cells) > max(columns.values()) + 1:
            form = "probe,gallery,same[,fold]" if labels else "probe,gallery[,same[,fold]]"
            raise ValueError(f"{where}: expected '{form}', got {row!r}")
        got = {name: cells[i] for name, i in columns.items() if i < len(cells)}
        probe, gallery = got.get("probe", ""), got.get("gallery", "")
        label, fold_cell = got.get("same", ""), got.get("fold", "")
        if not probe or not gallery:
            raise ValueError(f"{where}: empty image path in {row!r}")
        if label or labels:
            try:
                same: bool | None = _parse_same(label, where)
            except ValueError:
                if labels or "id" in columns:
                    raise
                raise ValueError(f"{where}: label must be 1/0 (same/different), got {label!r}; "
                                 "to name pairs, start the list with a header row such as "
                                 "'probe,gallery,id'") from None
        else:
            same = None
        try:
            fold = int(fold_cell) if fold_cell else 0
        except ValueError:
            raise ValueError(f"{where}: fold must be an integer, got {fold_cell!r}") from None
        if fold < 0:
            raise ValueError(f"{where}: fold must be >= 0, got {fold}")
        pairs.append(ListedPair(root / probe, root / gallery, same, fold,
                                got.get("id") or None))
    if not pairs:
        raise ValueError(f"{path}: empty pair list")
    return pairs


def _locate_list(path: str | Path, root: str | Path | None,
                 format: str) -> tuple[Path, Path, str]:
    """The pair list's path, its image folder (default: the list's folder) and its format
    (``"auto"`` resolved by :func:`detect_format`); errors name what is missing."""
    path = Path(path)
    if format not in FORMATS:
        raise ValueError(f"unknown pair-list format {format!r}; choose one of {FORMATS}")
    if not path.is_file():
        raise FileNotFoundError(f"no such pair list: {path}")
    root_path = Path(root) if root is not None else path.parent
    if not root_path.is_dir():
        raise FileNotFoundError(f"no such image folder: {root_path}")
    return path, root_path, detect_format(path) if format == "auto" else format


def read_pair_list(path: str | Path, root: str | Path | None = None,
                   format: str = "auto") -> list[Pair]:
    """Read a pair list in any supported format (see the module docstring).

    ``root`` is the image folder (default: the pair list's folder). ``format`` is ``"auto"``
    (guessed by :func:`detect_format`), ``"lfw"``, ``"calfw"`` or ``"csv"``.
    """
    path, root_path, fmt = _locate_list(path, root, format)
    if fmt == "lfw":
        return read_pairs(path, root_path)
    if fmt == "calfw":
        return read_calfw_pairs(path, root_path)
    return read_csv_pairs(path, root_path)


def read_listed_pairs(path: str | Path, root: str | Path | None = None,
                      format: str = "auto") -> list[ListedPair]:
    """Read a pair list whose labels are optional (``xfr explain --pairs``): every format of
    :func:`read_pair_list`, and CSV/TSV rows ``probe,gallery`` without a label (a header row
    may also name an ``id`` column, the pair's name in the outputs)."""
    path, root_path, fmt = _locate_list(path, root, format)
    if fmt == "csv":
        return _read_csv(path, root_path, labels=False)
    return [ListedPair(p.probe, p.gallery, p.same, p.fold)
            for p in read_pair_list(path, root_path, fmt)]


def select_folds(pairs: list[Pair], folds: set[int] | None) -> list[Pair]:
    """The pairs of the given (1-based) folds; all pairs when ``folds`` is ``None``."""
    if folds is None:
        return list(pairs)
    present = {p.fold for p in pairs}
    missing = set(folds) - present
    if missing:
        raise ValueError(f"fold(s) {sorted(missing)} not in the pair list (it has folds "
                         f"{sorted(present)}; lists without folds have only fold 0)")
    return [p for p in pairs if p.fold in folds]


__all__ = ["FORMATS", "ListedPair", "Pair", "detect_format", "read_calfw_pairs",
           "read_csv_pairs", "read_listed_pairs", "read_pair_list", "select_folds"]
