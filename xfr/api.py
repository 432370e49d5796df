"""The embedding API: ``xfr.explain``, ``xfr.explain_pairs``, ``xfr.load_verifier``.

Inputs are paths, PIL images, NumPy arrays or tensors; raw photos are aligned first
(:func:`xfr.align.align`), 112x112 crops pass through untouched.

Everything that can be checked without a model is checked first, before the model is loaded
and before any model pass (README, "Use"): the options (``pairs_per_batch``, ``detector``,
``method`` and the explainer's own options, e.g. the paper's ``generator``, ``selector``,
``strategies``, ``fill``, ``target``), then the images of the first batch (read and aligned).
Bad values raise the exceptions of :mod:`xfr.errors`, which are also ``ValueError`` /
``TypeError`` as a caller would expect.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from xfr.defaults import DEFAULT_METHOD
from xfr.errors import ModelError, OptionError, OptionTypeError
from xfr.explanation import Explanation

_cache_lock = threading.Lock()
_verifier_cache: dict[str, Any] = {}
#: The device verifiers are loaded on when none is given (``xfr COMMAND --device``).
_default_device: str | None = None
#: id(verifier) -> what the explanations record about its model (``notes["model"]``).
_model_info: dict[int, dict[str, Any]] = {}
#: Files whose bytes make a model's hash (config and weights).
MODEL_FILE_SUFFIXES = (".json", ".safetensors", ".pth", ".pt", ".bin", ".onnx")

#: What a verifier object needs (``xfr.interfaces.Verifier``).
VERIFIER_ATTRIBUTES = ("embed", "distance", "threshold")


def default_model_path() -> Path:
    """The folder of the bundled default model (``config.json`` + ``model.safetensors``)."""
    return Path(str(resources.files("xfr") / "models" / "default"))


def read_model_config(folder: str | Path) -> dict[str, Any]:
    """``config.json`` of an xfr model folder as a dict; :class:`~xfr.errors.ModelError`
    naming the file when it is not valid JSON, not an object, or names no verifier."""
    path = Path(folder) / "config.json"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ModelError(f"{path}: not a text file (config.json must be JSON)") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(doc, dict):
        raise ModelError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    kind = doc.get("verifier")
    if not kind or not isinstance(kind, str):
        raise ModelError(f"{path} does not name its verifier ('verifier' key), got {kind!r}")
    return doc


def check_device(device: Any) -> str:
    """``device`` (``"cpu"``, ``"cuda"``, ``"cuda:N"``, ...) as text if PyTorch knows it and
    this machine has it, else :class:`~xfr.errors.OptionError`."""
    import torch

    if not isinstance(device, str):
        raise OptionTypeError(f"device must be a string such as 'cpu' or 'cuda:0', got "
                              f"{device!r}")
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise OptionError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise OptionError(f"device {device!r}: no CUDA GPU is available here "
                              "(torch.cuda.is_available() is False); use --device cpu")
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise OptionError(f"device {device!r}: this machine has {count} CUDA GPU(s) "
                              f"(cuda:0 to cuda:{count - 1})")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise OptionError(f"device {device!r}: MPS is not available here")
    return str(parsed)


def set_default_device(device: str | None) -> None:
    """Load verifiers on ``device`` when no ``device=`` option is given (``--device``);
    ``None`` restores the verifiers' own default (the CPU)."""
    global _default_device
    _default_device = None if device is None else check_device(device)


def _accepts(factory: Any, option: str) -> bool:
    import inspect

    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == option or p.kind is p.VAR_KEYWORD for p in params)


def check_verifier_object(verifier: Any) -> Any:
    """``verifier`` if it has ``embed``, ``distance`` and ``threshold``, else
    :class:`~xfr.errors.OptionTypeError` saying what a verifier argument may be."""
    missing = [a for a in VERIFIER_ATTRIBUTES if not hasattr(verifier, a)]
    if verifier is None or missing:
        raise OptionTypeError(
            "verifier must be a registered verifier name (see `xfr plugins`), "
            "'name:source' (e.g. 'face-transformer:/path/Backbone_VIT.pth'), an xfr model "
            f"folder, or a verifier object with embed, distance and threshold; got "
            f"{type(verifier).__name__ if verifier is not None else 'None'}"
        )
    return verifier


def _registered_spec(text: str) -> bool:
    """Whether ``text`` is ``"name:argument"`` with ``name`` a registered verifier."""
    from xfr import registry

    name, sep, _ = text.partition(":")
    return bool(sep) and name.strip() in registry.names("verifier")


def load_verifier(name_or_path: str | Path | Any = "default", **options: Any) -> Any:
    """A verifier by registered name, ``"name:source"`` spec, model folder, or ``"default"``
    (the bundled model).

    ``"face-transformer:/path/Backbone_VIT.pth"`` builds the registered ``face-transformer``
    verifier from that checkpoint (README, "The bundled model"); any ``"name:source"`` whose
    ``name`` is a registered verifier is passed to ``xfr.registry.create`` the same way. A
    folder holds xfr's format: ``config.json`` names the verifier plugin that reads it
    (``{"verifier": "face-vit", ...}``). A verifier object is returned unchanged. Loaded
    models are cached per (name, options) and shared: verifiers are used read-only.
    """
    from xfr import registry

    if not isinstance(name_or_path, (str, Path)):
        return check_verifier_object(name_or_path)
    text = str(name_or_path)
    if not text.strip():
        raise OptionError("verifier must not be empty (a name, 'name:source' or a folder)")
    if "device" in options:
        options["device"] = check_device(options["device"])
    path = default_model_path() if text == "default" else Path(name_or_path)
    if isinstance(name_or_path, str) and text != "default" and _registered_spec(text):
        name, spec, source = text.partition(":")[0].strip(), text, None
    elif (path / "config.json").is_file():
        name = spec = read_model_config(path)["verifier"]
        source = str(path)
    elif text == "default":
        raise FileNotFoundError(f"the bundled default model is missing: {path}")
    elif isinstance(name_or_path, Path) or "/" in text or path.exists():
        raise FileNotFoundError(f"no xfr model folder (config.json) at {path}")
    else:
        name, spec, source = text, text, None
    if ("device" not in options and _default_device is not None
            and _accepts(registry.get("verifier", name), "device")):
        options["device"] = _default_device
    key = json.dumps([text, sorted(options.items())], default=str)
    with _cache_lock:
        if key in _verifier_cache:
            return _verifier_cache[key]
    if source is None:
        verifier = registry.create("verifier", spec, **options)
    else:
        verifier = registry.create("verifier", spec, source=source, **options)
    source_path = source if source is not None else (
        spec.partition(":")[2] if ":" in spec else None)
    digest = model_digest(source_path) if source_path else None
    with _cache_lock:
        verifier = _verifier_cache.setdefault(key, verifier)
        _model_info[id(verifier)] = {"verifier": text, "plugin": name, "sha256": digest}
        return verifier


def model_digest(source: str | Path) -> str | None:
    """SHA-256 of a model: of the file, or of a folder's config and weights files (sorted by
    name; docs/explanation-format.md, ``notes.model``); ``None`` if there is nothing to hash."""
    import hashlib

    path = Path(source)
    files = ([path] if path.is_file() else
             sorted(p for p in path.iterdir() if p.is_file()
                    and p.suffix in MODEL_FILE_SUFFIXES) if path.is_dir() else [])
    if not files:
        return None
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0")
        with open(f, "rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def model_info(verifier: Any) -> dict[str, Any]:
    """What an explanation records about its model: how it was named, the plugin, its hash."""
    known = _model_info.get(id(verifier))
    if known is not None:
        return dict(known)
    return {"verifier": getattr(verifier, "name", type(verifier).__name__), "plugin": None,
            "sha256": None}


def describe_input(image: Any) -> str:
    """How ``notes["inputs"]`` names an input: its path, or its type and shape."""
    import os

    if isinstance(image, (str, os.PathLike)):
        return str(image)
    shape = getattr(image, "shape", None)
    dtype = getattr(image, "dtype", None)
    if shape is not None:
        return f"<{type(image).__name__} {tuple(shape)} {dtype}>"
    size = getattr(image, "size", None)
    return f"<{type(image).__name__} {size}>" if size is not None else f"<{type(image).__name__}>"


def to_tensor(crops: np.ndarray) -> Any:
    """``(N, H, W, 3)`` crops (uint8 or float, arrays or read-only memory maps) as an
    ``(N, 3, H, W)`` float32 tensor of their own memory."""
    import torch

    return torch.from_numpy(np.array(crops, dtype=np.float32)).permute(0, 3, 1, 2)


def prepare(images: Sequence[Any], size: int = 112, detector: str = "yunet") -> np.ndarray:
    """Aligned ``(N, size, size, 3)`` uint8 crops of ``images`` (paths, arrays, tensors);
    ``detector`` finds the face and its landmarks: ``"yunet"`` or ``"dlib"``."""
    return prepare_with_boxes(images, size, detector)[0]


def prepare_with_boxes(images: Sequence[Any], size: int = 112, detector: str = "yunet"
                       ) -> tuple[np.ndarray, list[dict[str, int] | None]]:
    """:func:`prepare`, and each face's box in its photo (``None`` for an aligned crop)."""
    from xfr.align import align_with_box

    found = [align_with_box(im, detector=detector) for im in images]
    for im, (c, _) in zip(images, found, strict=True):
        if c.shape[:2] != (size, size):
            raise OptionError(
                f"aligned crop of {im!r} is {c.shape[:2]}, the verifier needs {size}")
    return np.stack([c for c, _ in found]), [b.to_dict() if b else None for _, b in found]


def positive_int(name: str, value: Any) -> int:
    """``value`` as an int >= 1, else :class:`~xfr.errors.OptionError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise OptionTypeError(f"{name} must be an integer >= 1, got {value!r}")
    if value < 1:
        raise OptionError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def make_explainer(method: Any, options: dict[str, Any]) -> Any:
    """The explainer ``method`` built with ``options``: unknown methods, unknown options and
    bad option values fail here, before any model is loaded."""
    from xfr import registry

    if not isinstance(method, str):
        raise OptionTypeError(f"method must be an explainer name (str), got {method!r}")
    return registry.create("explainer", method, **options)


def check_compatible(explainer: Any, verifier: Any) -> None:
    """The explainer's own check of the verifier (e.g. the paper's method needs a ViT)."""
    check = getattr(explainer, "check_verifier", None)
    if callable(check):
        check(verifier)


def _check_pairs(pairs: Iterable[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    if isinstance(pairs, (str, Path)) or not isinstance(pairs, Iterable):
        raise OptionTypeError(
            f"pairs must be an iterable of (probe, gallery) tuples, got {type(pairs).__name__}")
    out = list(pairs)
    for i, pair in enumerate(out):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise OptionTypeError(
                f"pair {i} must be a (probe, gallery) tuple, got {type(pair).__name__}")
    return out


def explain_pairs(pairs: Iterable[tuple[Any, Any]], verifier: str | Any = "default",
                  method: str = DEFAULT_METHOD, *, pairs_per_batch: int = 32,
                  progress: bool = False, detector: str = "yunet", **options: Any
                  ) -> list[Explanation]:
    """Explain many (probe, gallery) pairs, one batched model call per stage and batch.

    The results equal explaining each pair alone with :func:`explain`. Photos are aligned
    with ``detector`` (``"yunet"`` or ``"dlib"``); 112x112 crops pass through. ``options``
    go to the explainer ``method`` (its factory), and are checked, with everything else,
    before the model is loaded.
    """
    from tqdm import tqdm

    from xfr.align import check_detector

    pairs_per_batch = positive_int("pairs_per_batch", pairs_per_batch)
    if not isinstance(progress, bool):
        raise OptionTypeError(f"progress must be True or False, got {progress!r}")
    check_detector(detector)
    if verifier is None or not isinstance(verifier, (str, Path)):
        check_verifier_object(verifier)
    explainer = make_explainer(method, options)
    pairs = _check_pairs(pairs)
    if not pairs:
        return []

    def crops(chunk: list[tuple[Any, Any]]) -> tuple[Any, Any, list[Any], list[Any]]:
        probes, probe_boxes = prepare_with_boxes([p for p, _ in chunk], 112, detector)
        galleries, gallery_boxes = prepare_with_boxes([g for _, g in chunk], 112, detector)
        return to_tensor(probes), to_tensor(galleries), probe_boxes, gallery_boxes

    # The first batch is read and aligned before the model loads: a bad image fails fast.
    first = crops(pairs[:pairs_per_batch])
    v = load_verifier(verifier)
    check_compatible(explainer, v)
    size = int(getattr(v, "input_size", 112))
    if size != 112:
        raise OptionError(f"the verifier takes {size}x{size} images; xfr aligns faces to "
                          "112x112 crops (ArcFace template)")
    out: list[Explanation] = []
    with tqdm(total=len(pairs), disable=not progress, desc=f"explaining ({method})") as bar:
        for s in range(0, len(pairs), pairs_per_batch):
            chunk = pairs[s : s + pairs_per_batch]
            probes, galleries, probe_boxes, gallery_boxes = first if s == 0 else crops(chunk)
            done = explainer.explain_pairs(v, probes, galleries)
            for e, (p, g), pb, gb in zip(done, chunk, probe_boxes, gallery_boxes, strict=True):
                e.notes.setdefault("inputs", {"probe": describe_input(p),
                                              "gallery": describe_input(g)})
                e.notes.setdefault("faces", {"probe": pb, "gallery": gb})
                e.notes.setdefault("model", model_info(v))
            out += done
            bar.update(len(chunk))
    return out


def explain(probe: Any, gallery: Any, verifier: str | Any = "default",
            method: str = DEFAULT_METHOD, generator: str | None = None,
            selector: str | None = None, **options: Any) -> Explanation:
    """Explain why ``verifier`` accepts or rejects the pair (``probe``, ``gallery``).

    ``method`` is xfr's default explainer (:data:`xfr.defaults.DEFAULT_METHOD`,
    docs/faithfulness.md) unless named (``"paper"``: the paper's Sec. 3). ``generator``
    applies to the explainers built on attention maps (``relevance``, ``paper``),
    ``selector`` to the paper's; other options go to the explainer.
    """
    if generator is not None:
        options["generator"] = generator
    if selector is not None:
        options["selector"] = selector
    return explain_pairs([(probe, gallery)], verifier, method, **options)[0]
