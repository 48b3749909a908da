"""OpenCV's YuNet CNN face detector (cv2.FaceDetectorYN), the default."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from emotion_batch.config import YUNET_URL
from emotion_batch.detect.base import FaceBox, detector_version, downscale, to_original
from emotion_batch.errors import WeightsMissingError

YUNET_FILE = "face_detection_yunet_2023mar.onnx"


class YuNetDetector:
    """YuNet at a bounded working resolution; boxes mapped back to the original image."""

    name = "yunet"

    @classmethod
    def version_of(cls, models: Sequence[Path]) -> str:
        return detector_version(cls.name, *models)

    def __init__(self, model: Path, max_side: int = 640, score: float = 0.7, min_face: int = 24) -> None:
        if not Path(model).is_file():
            raise WeightsMissingError(f"YuNet model not found at {model}; download {YUNET_URL}")
        self.model = Path(model)
        self.version = self.version_of((self.model,))
        self.max_side = max_side
        self.min_face = min_face
        self._net = cv2.FaceDetectorYN.create(str(model), "", (320, 320), score, 0.3, 5000)

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        """Detect faces; YuNet wants BGR at the size it was told."""
        small, scale = downscale(rgb, self.max_side)
        bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
        self._net.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, found = self._net.detect(bgr)
        if found is None:
            return []
        return to_original(found[:, :4], found[:, 14], scale, rgb.shape, self.min_face, landmarks=found[:, 4:14])
