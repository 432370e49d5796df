"""LFW: the image folder (``<root>/<Name>/<Name>_NNNN.jpg``) and View 2's ``pairs.txt``.

View 2 has 10 identity-disjoint folds of 300 positive and 300 negative pairs. A model evaluated
on some folds must never have seen the people in them (docs/method.md, "Verification accuracy").
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from xfr.errors import InputError


@dataclass(frozen=True)
class Pair:
    """One verification pair: two image paths, the ground truth and the fold it belongs to."""

    probe: Path
    gallery: Path
    same: bool
    fold: int  # 1-based; 0 when the list has no folds


def default_lfw_root() -> Path | None:
    """``$XFR_LFW`` or ``../shared/data/lfw`` next to the repository/working directory."""
    env = os.environ.get("XFR_LFW")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    candidates += [p / "shared" / "data" / "lfw" for p in here.parents]
    candidates.append(Path.cwd().parent / "shared" / "data" / "lfw")
    for c in candidates:
        if (c / "pairs.txt").exists():
            return c
    return None


def image_folder(root: str | Path) -> Path:
    """The folder holding ``<Name>/`` subfolders (``lfw-deepfunneled`` when present)."""
    root = Path(root)
    for name in ("lfw-deepfunneled", "lfw", "lfw_funneled"):
        if (root / name).is_dir():
            return root / name
    return root


def image_path(images: Path, name: str, number: int) -> Path:
    return images / name / f"{name}_{number:04d}.jpg"


def read_pairs(pairs_file: str | Path, images: str | Path | None = None) -> list[Pair]:
    """Parse LFW View 2 ``pairs.txt`` (header ``folds n``, then per fold n positive, n negative).

    Blank lines are skipped: a pair's fold is counted from the pairs before it, not from its line
    number. Raises :class:`~xfr.errors.InputError` (a ``ValueError``) with the line number on a
    malformed line, and when a fold's pairs are not n positive then n negative lines (a line
    missing or too many would silently move pairs to the wrong fold).
    """
    pairs_file = Path(pairs_file)
    folder = image_folder(images if images is not None else pairs_file.parent)
    lines = read_text_lines(pairs_file)
    if not lines:
        raise InputError(f"{pairs_file}: empty pair list")
    head = lines[0].split()
    try:
        n_folds, per_fold = (int(head[0]), int(head[1])) if len(head) == 2 else (1, 0)
    except ValueError:
        raise InputError(f"{pairs_file}:1: header must be '<folds> <pairs per fold>'") from None
    body = lines[1:] if len(head) == 2 else lines
    out: list[Pair] = []
    for i, line in enumerate(body):
        lineno = i + (2 if len(head) == 2 else 1)
        parts = line.split()
        if not parts:
            continue
        index = len(out)  # pairs so far: blank lines do not count
        fold = (index // (2 * per_fold)) + 1 if per_fold else 0
        try:
            if len(parts) == 3:
                name, a, b = parts[0], int(parts[1]), int(parts[2])
                pair = Pair(image_path(folder, name, a), image_path(folder, name, b), True, fold)
            elif len(parts) == 4:
                n1, a, n2, b = parts[0], int(parts[1]), parts[2], int(parts[3])
                pair = Pair(image_path(folder, n1, a), image_path(folder, n2, b), False, fold)
            else:
                raise ValueError
        except ValueError:
            raise InputError(
                f"{pairs_file}:{lineno}: expected 'Name n1 n2' or 'Name1 n1 Name2 n2', got {line!r}"
            ) from None
        if per_fold and fold <= n_folds:
            positive = index % (2 * per_fold) < per_fold
            if pair.same != positive:
                raise InputError(
                    f"{pairs_file}:{lineno}: pair {index % (2 * per_fold) + 1} of fold {fold} "
                    f"should be {'positive' if positive else 'negative'} (each fold: "
                    f"{per_fold} positive then {per_fold} negative lines); a line is missing "
                    "or one too many before it")
        out.append(pair)
    if per_fold and len(out) != n_folds * 2 * per_fold:
        raise InputError(
            f"{pairs_file}: header announces {n_folds}x{2 * per_fold} pairs, found {len(out)}"
        )
    return out


def read_text_lines(path: str | Path) -> list[str]:
    """The lines of a text file (UTF-8); :class:`~xfr.errors.InputError` naming the file when
    it is binary or not UTF-8 (an image or archive given as a pair list)."""
    path = Path(path)
    data = path.read_bytes()
    if b"\x00" in data[:4096]:
        raise InputError(f"{path}: a binary file, not a text pair list")
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: not a UTF-8 text pair list (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start})") from None


def identity_of(path: Path) -> str:
    """LFW identity of an image path (its folder name)."""
    return path.parent.name


def fold_identities(pairs: list[Pair], folds: set[int]) -> set[str]:
    """Every person appearing in the given folds (both sides of every pair)."""
    names: set[str] = set()
    for p in pairs:
        if p.fold in folds:
            names.add(identity_of(p.probe))
            names.add(identity_of(p.gallery))
    return names


def list_images(images: str | Path) -> list[tuple[str, Path]]:
    """All ``(identity, path)`` of an LFW-style folder, sorted."""
    folder = image_folder(images)
    out = []
    for person in sorted(p for p in folder.iterdir() if p.is_dir()):
        for f in sorted(person.iterdir()):
            if f.suffix.lower() in (".jpg", ".jpeg", ".png"):
                out.append((person.name, f))
    return out
