"""Cut a face out of a photo the way FER2013 framed its faces: one 48x48 grey array.

A detector box is tight around the face; FER2013's faces show a little more (forehead,
chin, some background). `margin` widens the square around the box to match, and `align`
turns the face so the eyes are level when the detector gives eye landmarks (YuNet does).
Both defaults were chosen by measurement on FER2013 test faces pasted into larger scenes
and run through the real detect -> crop -> classify path (`python -m bench.pasted`, see
models/README.md). Pixels beyond the image edge repeat the border, so a face at the edge
keeps its aspect ratio.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from emotion_batch.detect.base import FaceBox
from emotion_batch.preprocess import FACE_SIZE, preprocess_face

SQRT2 = math.sqrt(2.0)


MAX_TILT = 45.0
"""Eye lines steeper than this are not trusted (detectors find upright-ish faces)."""


def eye_angle(box: FaceBox) -> float:
    """Degrees to rotate the image (counter-clockwise, OpenCV's convention) so the eyes are
    level; 0 without landmarks or when the eye line is implausibly steep."""
    if not box.landmarks or len(box.landmarks) < 2:
        return 0.0
    (rx, ry), (lx, ly) = box.landmarks[0], box.landmarks[1]
    if lx < rx:  # whichever order a detector gives its eyes, measure left to right
        (rx, ry), (lx, ly) = (lx, ly), (rx, ry)
    angle = math.degrees(math.atan2(ly - ry, lx - rx))
    return angle if abs(angle) <= MAX_TILT else 0.0


def _square(gray: np.ndarray, cx: float, cy: float, side: int) -> np.ndarray:
    """The side x side square centred on (cx, cy); outside the image the border repeats."""
    return _window(gray, int(round(cx - side / 2)), int(round(cy - side / 2)), side)


def _window(image: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """The side x side square from (x0, y0); outside the image the border repeats."""
    height, width = image.shape[:2]
    pad = max(0, -x0, -y0, x0 + side - width, y0 + side - height)
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0 = x0 + pad, y0 + pad
    return image[y0 : y0 + side, x0 : x0 + side]


def face_crop_rgb(rgb: np.ndarray, box: FaceBox, margin: float = 1.0, align: bool = False) -> np.ndarray:
    """`face_crop` of an RGB image, pixel for pixel, converting only the face's
    surroundings to grey (not the whole photo, most of which no crop reads)."""
    side = max(1, int(round(max(box.w, box.h) * margin)))
    reach = int(math.ceil(side * SQRT2)) + 4  # covers the rotated square and the rounding
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    # an even origin: Python rounds halves to even, so the crop's own rounding inside the
    # region then lands on the same pixels as it does on the whole image
    x0, y0 = 2 * math.floor((cx - reach / 2) / 2), 2 * math.floor((cy - reach / 2) / 2)
    region = cv2.cvtColor(_window(rgb, x0, y0, reach + 2), cv2.COLOR_RGB2GRAY)
    landmarks = tuple((px - x0, py - y0) for px, py in box.landmarks) if box.landmarks else box.landmarks
    moved = FaceBox(box.x - x0, box.y - y0, box.w, box.h, box.confidence, landmarks)
    return face_crop(region, moved, margin, align)


def face_crop(gray: np.ndarray, box: FaceBox, margin: float = 1.0, align: bool = False) -> np.ndarray:
    """The 48x48 uint8 face for the classifier from a 2-D grey image and a box on it."""
    side = max(1, int(round(max(box.w, box.h) * margin)))
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    angle = eye_angle(box) if align else 0.0
    if abs(angle) < 1.0:
        return preprocess_face(_square(gray, cx, cy, side))
    # Shrink a square wide enough for any rotation first (INTER_AREA, no aliasing), then
    # rotate about its centre and keep the middle FACE_SIZE pixels.
    outer = int(math.ceil(FACE_SIZE * SQRT2)) | 1
    region = _square(gray, cx, cy, int(math.ceil(side * SQRT2)))
    small = cv2.resize(
        region, (outer, outer), interpolation=cv2.INTER_AREA if region.shape[0] > outer else cv2.INTER_LINEAR
    )
    centre = ((outer - 1) / 2, (outer - 1) / 2)
    rotation = cv2.getRotationMatrix2D(centre, angle, 1.0)
    turned = cv2.warpAffine(small, rotation, (outer, outer), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    start = (outer - FACE_SIZE) // 2
    return np.ascontiguousarray(turned[start : start + FACE_SIZE, start : start + FACE_SIZE])
