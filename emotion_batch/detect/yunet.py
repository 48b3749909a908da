"""OpenCV's YuNet CNN face detector (cv2.FaceDetectorYN), the default.

Coarse to fine: a first pass at `FIRST_PASS_SIDE` (YuNet's cost grows with the pixels it
sees: a 320 px pass costs about a quarter of a 640 px one), and a second pass at `max_side`
only where the first finds no face, a face so small that smaller ones may lie below what it
can see, or several faces (in a group some are partly hidden, turned or cut by the frame,
and those a coarse pass misses: alone, a 320 px pass finds 4 of the 6 faces of the
labelled crowded selfie, a 480 px pass all 6 there but 4 in some of its rescaled copies).
On the 512 images of `bench.photoset --repeat 16` this finds, image for image, the 599
faces the single 640 px pass finds, with a second pass on 32 images, in two thirds of
the detection time of a 480 px first pass (`python -m bench.detect`: 40 of 40 labelled
faces, none on the face-less photos).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from emotion_batch import defaults
from emotion_batch.config import YUNET_URL
from emotion_batch.detect.base import FaceBox, detector_version, downscale, to_original
from emotion_batch.errors import WeightsMissingError

YUNET_FILE = "face_detection_yunet_2023mar.onnx"

FIRST_PASS_SIDE = defaults.DETECT_FIRST_SIDE
"""Long side of the first, cheaper pass (capped by `max_side`; DETECT_FIRST_SIDE)."""

SMALL_FACE = 20
"""A face found smaller than this (pixels at the first pass) sends the image to the finer
pass: YuNet finds faces down to about 10 px, so one near that limit may have company below it."""

CROWD = 2
"""As many faces found as this sends the image to the finer pass."""


def shrink(rgb: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """`rgb` with its long side at most `side`, and the factor applied: averaged down by a
    whole factor first (OpenCV's area filter is fast only for those, about 5x slower for
    any other), then bilinear for the rest, less than a halving, where it does not alias."""
    height, width = rgb.shape[:2]
    whole = int(max(height, width) / side)
    if whole >= 2:
        rgb = cv2.resize(rgb, (max(1, width // whole), max(1, height // whole)), interpolation=cv2.INTER_AREA)
    small, rest = downscale(rgb, side, cv2.INTER_LINEAR)
    return small, rest * max(rgb.shape[:2]) / max(height, width)


class YuNetDetector:
    """YuNet at a bounded working resolution; boxes mapped back to the image it was given.

    `min_face` is in the original photo's pixels: `scale` (decoded / original, below 1
    when a JPEG was decoded at reduced size) converts it to the given image's.
    """

    name = "yunet"

    @classmethod
    def version_of(cls, models: Sequence[Path]) -> str:
        return detector_version(cls.name, *models)

    def __init__(
        self,
        model: Path,
        max_side: int = 640,
        score: float = 0.7,
        min_face: int = 24,
        first_side: int | None = FIRST_PASS_SIDE,
    ) -> None:
        if not Path(model).is_file():
            raise WeightsMissingError(f"YuNet model not found at {model}; download {YUNET_URL}")
        self.model = Path(model)
        self.version = self.version_of((self.model,))
        self.max_side = max_side
        self.first_side = min(first_side, max_side) if first_side else max_side
        self.min_face = min_face
        self._net = cv2.FaceDetectorYN.create(str(model), "", (320, 320), score, 0.3, 5000)

    def detect(self, rgb: np.ndarray, scale: float = 1.0) -> list[FaceBox]:
        """Detect faces: the first pass, then the finer one where it asks for it and this
        image has the pixels for it."""
        boxes, finer = self.first_pass(rgb, scale)
        return self.fine_pass(rgb, scale) if finer and self.gains_from_finer(max(rgb.shape[:2])) else boxes

    def first_pass(self, rgb: np.ndarray, scale: float = 1.0) -> tuple[list[FaceBox], bool]:
        """Faces at `first_side`, and whether the finer pass should look again (on this
        image, or on a finer decode of the same photo: the caller's choice)."""
        found, factor = self._pass(rgb, self.first_side)
        finer = self.first_side < self.max_side and (
            found is None or len(found) >= CROWD or float(np.min(found[:, 2:4])) < SMALL_FACE
        )
        return self._boxes(found, factor, rgb.shape, scale), finer

    def fine_pass(self, rgb: np.ndarray, scale: float = 1.0) -> list[FaceBox]:
        """Faces at `max_side` (or `rgb`'s own size when smaller)."""
        found, factor = self._pass(rgb, self.max_side)
        return self._boxes(found, factor, rgb.shape, scale)

    def gains_from_finer(self, long_side: int) -> bool:
        """Whether an image of this long side shows the finer pass more pixels than the first."""
        return min(long_side, self.max_side) > min(long_side, self.first_side)

    def prepare(self, rgb: np.ndarray, side: int) -> tuple[np.ndarray, float]:
        """The BGR image YuNet is given for a pass at `side`, and its factor to `rgb`."""
        small, factor = shrink(rgb, side)
        return cv2.cvtColor(small, cv2.COLOR_RGB2BGR), factor

    def forward(self, bgr: np.ndarray) -> np.ndarray | None:
        """YuNet's raw rows (N, 15) on a prepared image, or None when it finds nothing."""
        self._net.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, found = self._net.detect(bgr)
        return found

    def _pass(self, rgb: np.ndarray, side: int) -> tuple[np.ndarray | None, float]:
        bgr, factor = self.prepare(rgb, side)
        found = self.forward(bgr)
        return (found if found is not None and len(found) else None), factor

    def _boxes(self, found: np.ndarray | None, factor: float, shape: tuple[int, ...], scale: float) -> list[FaceBox]:
        if found is None:
            return []
        min_face = self.min_face * min(1.0, scale)
        return to_original(found[:, :4], found[:, 14], factor, shape, min_face, landmarks=found[:, 4:14])
