"""The libraries' own loops on the same photos, as their users run them.

- DeepFace: `DeepFace.analyze(path, actions=["emotion"])` per image, default detector.
- fer: `FER().detect_emotions(image)` per image (Haar + its TFLite mini-Xception).
Both find their files offline: DeepFace through DEEPFACE_HOME, fer in its own package.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Timing:
    """Images and faces processed, and the seconds it took."""

    images: int
    faces: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


def deepface_loop(paths: Sequence[Path], detector: str = "opencv", predecoded: bool = False) -> Timing:
    """DeepFace's per-image loop with one of its detector backends (first call, which
    builds the models, not timed). `predecoded`: the images are decoded before the clock
    starts and handed over as arrays, which favours DeepFace (its decode goes untimed)."""
    import cv2
    from deepface import DeepFace

    def analyze(image: object) -> int:
        try:
            found = DeepFace.analyze(img_path=image, actions=["emotion"], detector_backend=detector, silent=True)
            return len(found)
        except ValueError:  # "Face could not be detected": DeepFace's answer for no face
            return 0

    inputs: list[object] = [cv2.imread(str(p)) if predecoded else str(p) for p in paths]
    analyze(inputs[0])
    started = time.perf_counter()
    faces = sum(analyze(image) for image in inputs)
    return Timing(len(paths), faces, time.perf_counter() - started)


def fer_loop(paths: Sequence[Path]) -> Timing:
    """fer's per-image loop with its default (Haar) detector."""
    import cv2
    from fer.fer import FER

    from emotion_batch.detect.haar import default_cascade

    detector = FER(cascade_file=str(default_cascade()))
    detector.detect_emotions(cv2.imread(str(paths[0])))
    started = time.perf_counter()
    faces = sum(len(detector.detect_emotions(cv2.imread(str(path)))) for path in paths)
    return Timing(len(paths), faces, time.perf_counter() - started)
