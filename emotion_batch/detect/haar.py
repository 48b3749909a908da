"""OpenCV's Haar cascade face detector: the fallback when no YuNet file is available."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from emotion_batch.detect.base import FaceBox, detector_version, downscale, to_original
from emotion_batch.errors import WeightsMissingError

HAAR_FILE = "haarcascade_frontalface_default.xml"


def default_cascade() -> Path:
    """The frontal-face cascade shipped in the OpenCV 4.x wheel (`cv2.data`)."""
    return Path(cv2.data.haarcascades) / HAAR_FILE  # type: ignore[attr-defined]  # no stubs for cv2.data


class HaarDetector:
    """Haar cascade at a bounded working resolution. Confidence is a fixed 1.0 after
    the cascade's own level-weight vote, as the cascade gives no calibrated score."""

    name = "haar"

    @classmethod
    def version_of(cls, models: Sequence[Path]) -> str:
        return detector_version(cls.name, *models)

    def __init__(
        self,
        cascade: Path | None = None,
        max_side: int = 640,
        min_face: int = 24,
        min_neighbors: int = 5,
    ) -> None:
        self.cascade_path = Path(cascade) if cascade else default_cascade()
        self._cascade = cv2.CascadeClassifier(str(self.cascade_path))
        if self._cascade.empty():
            raise WeightsMissingError(f"Haar cascade not loadable from {self.cascade_path}")
        self.version = self.version_of((self.cascade_path,))
        self.max_side = max_side
        self.min_face = min_face
        self.min_neighbors = min_neighbors

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        """Detect faces on an equalised grey copy."""
        small, scale = downscale(rgb, self.max_side)
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        min_side = max(12, int(self.min_face * scale))
        boxes, _, weights = self._cascade.detectMultiScale3(
            gray,
            scaleFactor=1.1,
            minNeighbors=self.min_neighbors,
            minSize=(min_side, min_side),
            outputRejectLevels=True,
        )
        if len(boxes) == 0:
            return []
        scores = np.clip(np.asarray(weights, dtype=np.float64).reshape(-1) / 10.0 + 0.5, 0.0, 1.0)
        return to_original(np.asarray(boxes), scores, scale, rgb.shape, self.min_face)
