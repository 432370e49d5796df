"""The embedding API: ``xfr.explain``, ``xfr.explain_pairs``, ``xfr.load_verifier``.

Inputs are paths, PIL images, NumPy arrays or tensors; raw photos are aligned first
(:func:`xfr.align.align`), 112x112 crops pass through untouched.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from xfr.explanation import Explanation

_cache_lock = threading.Lock()
_verifier_cache: dict[str, Any] = {}


def default_model_path() -> Path:
    """The folder of the bundled default model (``config.json`` + ``model.safetensors``)."""
    return Path(str(resources.files("xfr") / "models" / "default"))


def load_verifier(name_or_path: str | Path | Any = "default", **options: Any) -> Any:
    """A verifier by registered name, by model folder, or ``"default"`` (the bundled model).

    A folder holds xfr's format: ``config.json`` names the verifier plugin that reads it
    (``{"verifier": "face-vit", ...}``). A verifier object is returned unchanged. Loaded
    models are cached per (name, options) and shared: verifiers are used read-only.
    """
    from xfr import registry

    if not isinstance(name_or_path, (str, Path)):
        return name_or_path
    key = json.dumps([str(name_or_path), sorted(options.items())], default=str)
    with _cache_lock:
        if key in _verifier_cache:
            return _verifier_cache[key]
    path = default_model_path() if str(name_or_path) == "default" else Path(name_or_path)
    if (path / "config.json").exists():
        doc = json.loads((path / "config.json").read_text())
        kind = doc.get("verifier")
        if not kind:
            raise ValueError(f"{path / 'config.json'} does not name its verifier ('verifier' key)")
        verifier = registry.create("verifier", kind, source=str(path), **options)
    elif str(name_or_path) == "default":
        raise FileNotFoundError(f"the bundled default model is missing: {path}")
    elif isinstance(name_or_path, Path) or "/" in str(name_or_path) or path.exists():
        raise FileNotFoundError(f"no xfr model folder (config.json) at {path}")
    else:
        verifier = registry.create("verifier", str(name_or_path), **options)
    with _cache_lock:
        _verifier_cache.setdefault(key, verifier)
        return _verifier_cache[key]


def to_tensor(crops: np.ndarray) -> Any:
    """``(N, H, W, 3)`` crops (uint8 or float, arrays or read-only memory maps) as an
    ``(N, 3, H, W)`` float32 tensor of their own memory."""
    import torch

    return torch.from_numpy(np.array(crops, dtype=np.float32)).permute(0, 3, 1, 2)


def prepare(images: Sequence[Any], size: int = 112, detector: str = "yunet") -> np.ndarray:
    """Aligned ``(N, size, size, 3)`` uint8 crops of ``images`` (paths, arrays, tensors);
    ``detector`` finds the face and its landmarks: ``"yunet"`` or ``"dlib"``."""
    from xfr.align import align

    crops = [align(im, detector=detector) for im in images]
    for im, c in zip(images, crops, strict=True):
        if c.shape[:2] != (size, size):
            raise ValueError(f"aligned crop of {im!r} is {c.shape[:2]}, the verifier needs {size}")
    return np.stack(crops)


def explain_pairs(pairs: Iterable[tuple[Any, Any]], verifier: str | Any = "default",
                  method: str = "paper", *, pairs_per_batch: int = 32, progress: bool = False,
                  detector: str = "yunet", **options: Any) -> list[Explanation]:
    """Explain many (probe, gallery) pairs, one batched model call per stage and batch.

    The results equal explaining each pair alone with :func:`explain`. Photos are aligned
    with ``detector`` (``"yunet"`` or ``"dlib"``); 112x112 crops pass through.
    """
    from tqdm import tqdm

    from xfr import registry

    pairs = list(pairs)
    if not pairs:
        return []
    v = load_verifier(verifier)
    explainer = registry.create("explainer", method)
    size = int(getattr(v, "input_size", 112))
    out: list[Explanation] = []
    with tqdm(total=len(pairs), disable=not progress, desc=f"explaining ({method})") as bar:
        for s in range(0, len(pairs), pairs_per_batch):
            chunk = pairs[s : s + pairs_per_batch]
            probes = to_tensor(prepare([p for p, _ in chunk], size, detector))
            galleries = to_tensor(prepare([g for _, g in chunk], size, detector))
            out += explainer.explain_pairs(v, probes, galleries, **options)
            bar.update(len(chunk))
    return out


def explain(probe: Any, gallery: Any, verifier: str | Any = "default", method: str = "paper",
            generator: str | None = None, selector: str | None = None,
            **options: Any) -> Explanation:
    """Explain why ``verifier`` accepts or rejects the pair (``probe``, ``gallery``).

    ``generator`` and ``selector`` apply to the paper's method (defaults ``"nograd-lrp"`` and
    ``"metric"``); other options go to the explainer.
    """
    if generator is not None:
        options["generator"] = generator
    if selector is not None:
        options["selector"] = selector
    return explain_pairs([(probe, gallery)], verifier, method, **options)[0]
