"""The face detector interface and the box type every detector returns."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from emotion_batch.hashing import sha256_file


@dataclass(frozen=True)
class FaceBox:
    """A face region in original-image pixels, with the detector's confidence (0-1).

    `landmarks`, when the detector gives them (YuNet): the (x, y) points of the right eye,
    left eye, nose tip, right and left mouth corners, in the same pixels as the box.
    """

    x: int
    y: int
    w: int
    h: int
    confidence: float
    landmarks: tuple[tuple[float, float], ...] | None = None


@runtime_checkable
class FaceDetector(Protocol):
    """Finds faces in an RGB uint8 image.

    `version` names the detector and its model file (`yunet-<sha256 prefix>`): stored with
    every image and face, and part of the key that decides whether a result is reused.
    """

    name: str
    version: str

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        """Return the faces found in `rgb` (H, W, 3), in original pixel coordinates."""
        ...


@runtime_checkable
class CoarseToFine(Protocol):
    """A detector that looks at a small image first and asks for a finer look only where
    that one's faces call for it (YuNet). The pipeline decodes photos only as large as the
    finer pass needs (`max_side`), and finer only for a face too small to crop well.

    `scale` is the given image's size over the original photo's (`min_face` applies in
    the original's pixels); boxes come back in the given image's pixels."""

    first_side: int
    max_side: int

    def first_pass(self, rgb: np.ndarray, scale: float = 1.0) -> tuple[list[FaceBox], bool]:
        """Faces at `first_side`, and whether the finer pass should look again."""
        ...

    def fine_pass(self, rgb: np.ndarray, scale: float = 1.0) -> list[FaceBox]:
        """Faces at `max_side` (or the image's own size when smaller)."""
        ...

    def gains_from_finer(self, long_side: int) -> bool:
        """Whether an image of this long side shows the finer pass more pixels than the first."""
        ...


class DetectorClass(Protocol):
    """What the detector registry needs of a detector class: building one, and the version
    one built on given model files carries, known without loading them (submit-time reuse)."""

    def __call__(self, *args: Any, **kwargs: Any) -> FaceDetector: ...

    def version_of(self, models: Sequence[Path]) -> str:
        """The `version` a detector built on `models` carries."""
        ...


def detector_version(name: str, *models: Path, extra: str = "") -> str:
    """`name-<first 16 hex digits of the model file's sha256>`, e.g. `yunet-8f2383e4dd3cfbb4`
    (several files, or `extra`, such as constants that change the boxes: of the sha256 of
    their sha256s, in order, then `extra`)."""
    digests = [sha256_file(model) for model in models]
    if len(digests) == 1 and not extra:
        digest = digests[0]
    else:
        digest = hashlib.sha256(("".join(digests) + extra).encode()).hexdigest()
    return f"{name}-{digest[:16]}"


def downscale(rgb: np.ndarray, max_side: int, interpolation: int = cv2.INTER_AREA) -> tuple[np.ndarray, float]:
    """Shrink `rgb` so its long side is at most `max_side`; return it and the factor applied."""
    height, width = rgb.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale == 1.0:
        return rgb, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=interpolation), scale


def to_original(
    boxes: np.ndarray,
    scores: np.ndarray,
    scale: float,
    shape: tuple[int, ...],
    min_face: float,
    landmarks: np.ndarray | None = None,
) -> list[FaceBox]:
    """Map (N, 4) x/y/w/h boxes (and (N, 2k) landmark x/y pairs) found at `scale` back to
    the original image, boxes clipped to it."""
    if len(boxes) == 0:
        return []
    height, width = shape[:2]
    xywh = np.asarray(boxes, dtype=np.float64) / scale
    x0 = np.clip(xywh[:, 0], 0, width - 1)
    y0 = np.clip(xywh[:, 1], 0, height - 1)
    x1 = np.clip(xywh[:, 0] + xywh[:, 2], 0, width)
    y1 = np.clip(xywh[:, 1] + xywh[:, 3], 0, height)
    keep = np.minimum(x1 - x0, y1 - y0) >= min_face
    points: list[tuple[tuple[float, float], ...] | None] = [None] * int(keep.sum())
    if landmarks is not None:
        kept = np.asarray(landmarks, dtype=np.float64).reshape(len(boxes), -1)[keep]
        # the point count comes from the columns: with no box kept, NumPy cannot infer it
        pairs = kept.reshape(len(kept), kept.shape[1] // 2, 2)
        points = [tuple((float(px), float(py)) for px, py in face / scale) for face in pairs]
    rows = zip(x0[keep], y0[keep], (x1 - x0)[keep], (y1 - y0)[keep], np.asarray(scores)[keep], points)
    return [FaceBox(int(a), int(b), int(c), int(d), float(s), p) for a, b, c, d, s, p in rows]
