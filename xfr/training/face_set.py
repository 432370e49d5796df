"""A cached set of aligned faces for training: crops, identities and teacher embeddings.

Any LFW-style folder (``<root>/<Name>/<Name>_NNNN.jpg``: identities from folder names) or any
folder of aligned 112x112 crops (no identities, e.g. FairFace) becomes three arrays in a cache
folder: ``crops.npy`` ``(N, 112, 112, 3)`` uint8, ``labels.npy`` ``(N,)`` int (-1: unknown)
and ``index.json`` (files, identity names, skipped files with reasons). Teacher embeddings of
each crop and of its mirror image are cached beside them (``teacher_<name>.npy``,
``(N, 2, D)``), computed once.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xfr.align import CROP_SIZE, align

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass
class FaceSet:
    """Aligned crops with integer identity labels (-1 = unknown) and their files."""

    crops: np.ndarray
    labels: np.ndarray
    files: list[str]
    names: list[str]  # identity name per label id
    skipped: list[tuple[str, str]]

    def __len__(self) -> int:
        return len(self.files)


def list_face_files(root: str | Path, *, identities: bool | None = None,
                    exclude_identities: set[str] | None = None, limit: int | None = None,
                    seed: int = 0) -> list[tuple[str, Path]]:
    """``(identity or "", path)`` of every image under ``root``.

    ``identities=None`` guesses: subfolders holding images are identities (LFW-style);
    otherwise all images (recursively) are anonymous. ``limit`` keeps a seeded random subset
    of that many files (in sorted order).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder: {root}")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir())
    if identities is None:
        identities = bool(subdirs) and all(
            any(f.suffix.lower() in IMAGE_SUFFIXES for f in d.iterdir()) for d in subdirs[:20]
        ) and not any(f.suffix.lower() in IMAGE_SUFFIXES for f in root.iterdir())
        # FairFace-style train/val folders are anonymous, not identities
        if identities and {d.name for d in subdirs} <= {"train", "val", "test"}:
            identities = False
    out: list[tuple[str, Path]] = []
    if identities:
        for d in subdirs:
            if exclude_identities and d.name in exclude_identities:
                continue
            out += [(d.name, f) for f in sorted(d.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    else:
        out = [("", f) for f in sorted(root.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]
    if limit is not None and limit < len(out):
        keep = np.sort(np.random.default_rng(seed).choice(len(out), size=limit, replace=False))
        out = [out[i] for i in keep]
    return out


def _align_one(path: str) -> tuple[np.ndarray | None, str | None]:
    try:
        return align(path), None
    except Exception as exc:  # reported per file and skipped, never silently dropped
        return None, f"{type(exc).__name__}: {exc}"


def _key(files: Sequence[tuple[str, Path]]) -> str:
    h = hashlib.sha1()
    for name, f in files:
        h.update(f"{name}\t{f}\n".encode())
    return h.hexdigest()[:16]


def build_face_set(files: Sequence[tuple[str, Path]], cache_dir: str | Path, *,
                   workers: int = 2, progress: bool = True) -> FaceSet:
    """Align ``files`` (once; cached under ``cache_dir/<hash of the list>``) into a FaceSet."""
    cache = Path(cache_dir) / _key(files)
    index_file = cache / "index.json"
    if index_file.exists():
        index = json.loads(index_file.read_text())
        crops = np.load(cache / "crops.npy", mmap_mode="r")
        return FaceSet(crops, np.load(cache / "labels.npy"), index["files"], index["names"],
                       [tuple(s) for s in index["skipped"]])
    cache.mkdir(parents=True, exist_ok=True)
    paths = [str(f) for _, f in files]
    crops = np.lib.format.open_memmap(
        cache / "crops.tmp.npy", mode="w+", dtype=np.uint8,
        shape=(len(paths), CROP_SIZE, CROP_SIZE, 3)
    )
    ok = np.zeros(len(paths), bool)
    skipped: list[tuple[str, str]] = []
    from tqdm import tqdm

    ctx = mp.get_context("fork")
    with ctx.Pool(max(1, workers)) as pool:
        it = pool.imap(_align_one, paths, chunksize=32)
        for i, (crop, err) in enumerate(tqdm(it, total=len(paths), disable=not progress,
                                             desc=f"aligning {len(paths)} images")):
            if crop is None:
                skipped.append((paths[i], err or "unknown error"))
            else:
                crops[i] = crop
                ok[i] = True
    crops.flush()
    keep = np.flatnonzero(ok)
    names = sorted({n for n, _ in files if n})
    name_id = {n: i for i, n in enumerate(names)}
    labels = np.array([name_id[files[int(i)][0]] if files[int(i)][0] else -1 for i in keep],
                      dtype=np.int64)
    final = np.lib.format.open_memmap(cache / "crops.npy.tmp", mode="w+", dtype=np.uint8,
                                      shape=(len(keep), CROP_SIZE, CROP_SIZE, 3))
    for s in range(0, len(keep), 1024):
        final[s : s + 1024] = crops[keep[s : s + 1024]]
    final.flush()
    del final, crops
    os.replace(cache / "crops.npy.tmp", cache / "crops.npy")
    os.remove(cache / "crops.tmp.npy")
    np.save(cache / "labels.npy", labels)
    index_file.write_text(json.dumps({"files": [paths[i] for i in keep], "names": names,
                                      "skipped": skipped}))
    if skipped:
        print(f"skipped {len(skipped)} of {len(paths)} images (see {index_file})")
    return build_face_set(files, cache_dir, workers=workers, progress=progress)


def teacher_embeddings(face_set: FaceSet, cache_dir: str | Path, teacher_name: str,
                       embed: Callable[[np.ndarray], np.ndarray], *, batch_size: int = 64,
                       mirror: bool = True, progress: bool = True) -> np.ndarray:
    """``(N, 2, D)`` teacher embeddings of each crop and its mirror, cached and resumable.

    ``embed`` maps ``(B, 3, 112, 112)`` float32 0..255 RGB to ``(B, D)`` L2-normalised rows.
    With ``mirror=False`` the mirror image is not run through the teacher (half the cost) and
    its row repeats the image's embedding: a face and its mirror image are the same person.
    """
    from tqdm import tqdm

    key = hashlib.sha1("\n".join(face_set.files).encode()).hexdigest()[:16]
    kind = "" if mirror else "_nomirror"
    out = Path(cache_dir) / f"teacher_{teacher_name}{kind}_{key}.npy"
    if out.exists():
        cached: np.ndarray = np.load(out)
        return cached
    partial = out.with_suffix(".partial.npz")
    done: list[np.ndarray] = []
    if partial.exists():
        done = [np.load(partial)["emb"]]
    start = sum(len(d) for d in done)
    n = len(face_set)
    bar = tqdm(total=n, initial=start, disable=not progress, desc=f"teacher {teacher_name}")
    for s in range(start, n, batch_size):
        x = np.ascontiguousarray(face_set.crops[s : s + batch_size].transpose(0, 3, 1, 2),
                                 dtype=np.float32)
        e0 = embed(x)
        e1 = embed(np.ascontiguousarray(x[..., ::-1])) if mirror else e0
        e = np.stack([e0, e1], axis=1)
        if not np.isfinite(e).all():
            raise FloatingPointError(f"teacher {teacher_name} gave non-finite embeddings "
                                     f"for images {s}..{s + len(x) - 1}")
        done.append(e.astype(np.float32))
        bar.update(len(x))
        if len(done) % 20 == 0:
            np.savez(partial, emb=np.concatenate(done))
    bar.close()
    emb = np.concatenate(done) if done else np.zeros((0, 2, 0), np.float32)
    np.save(out, emb)
    if partial.exists():
        partial.unlink()
    return emb
