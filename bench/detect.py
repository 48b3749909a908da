"""Face detectors compared on hand-labelled boxes: which one a fresh install should use.

    python -m bench.detect                  # every detector that can be built here
    python -m bench.detect --only blazeface,haar    # names match by prefix: every BlazeFace variant

The labelled set (bench/detect_labels.json): every face in ../shared/data/photos (32 real
photos, 37 faces), the astronaut portrait scikit-image ships at two sizes, and 18 photos
without a human face (scikit-image's samples, and the patch of the astronaut's suit where
Haar found a "face" in the demo). Printed per detector: precision and recall of face boxes
at IoU >= 0.5, the share of face photos where at least one labelled face was found, false
positives on the face-less photos, and milliseconds per image (median over the set, the
detector's own working resolution, one thread). Photos are decoded and searched as the
worker does it (`emotion_batch.pipeline`: large JPEGs decoded at the reduced scale the
detector asks for, YuNet's finer pass and finer decode where its first pass asks for
them; that time is in the ms column, the first decode is not), and boxes compared in
original pixels.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np

from emotion_batch.config import Settings
from emotion_batch.detect import FaceBox, FaceDetector
from emotion_batch.imaging import LoadedImage, decode_image, read_file
from emotion_batch.pipeline import decode_side, find_boxes, unscale
from models.settings import data_settings

LABELS = Path(__file__).with_name("detect_labels.json")
IOU = 0.5


@dataclass
class Sample:
    """One photo of the set: its pixels (or its file's bytes, decoded for each detector as
    the worker would), its labelled faces, and faces not to count."""

    name: str
    rgb: np.ndarray | None
    faces: list[tuple[int, int, int, int]]
    ignore: list[tuple[int, int, int, int]] = field(default_factory=list)
    data: bytes | None = None

    def image(self, detector: FaceDetector, settings: Settings) -> LoadedImage:
        """The image as the worker decodes it for `detector`."""
        if self.data is None:
            assert self.rgb is not None
            return LoadedImage(self.rgb, self.rgb.shape[1], self.rgb.shape[0], "array", None)
        return decode_image(self.data, settings.max_pixels, decode_side(detector, settings.decode_max_side))


def iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """Intersection over union of two x, y, w, h boxes."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union else 0.0


def match(found: list[FaceBox], faces: list[tuple], ignore: list[tuple]) -> tuple[int, int]:
    """Greedy matching, best score first: (true positives, false positives). A detection
    on an `ignore` face counts as neither."""
    taken: set[int] = set()
    hits = false = 0
    for box in sorted(found, key=lambda b: -b.confidence):
        xywh = (box.x, box.y, box.w, box.h)
        scores = [(iou(xywh, face), i) for i, face in enumerate(faces) if i not in taken]
        best = max(scores, default=(0.0, -1))
        if best[0] >= IOU:
            taken.add(best[1])
            hits += 1
        elif not any(iou(xywh, other) >= IOU for other in ignore):
            false += 1
    return hits, false


def _skimage(name: str) -> np.ndarray:
    from skimage import data

    if name == "astronaut-suit":  # where the Haar cascade saw a face in the demo's 1024 px copy
        return np.ascontiguousarray(_resized(data.astronaut(), 1024)[480:1024, 0:700])
    image = np.asarray(getattr(data, name)())
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])


def _resized(rgb: np.ndarray, side: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).resize((side, side), Image.Resampling.LANCZOS))


def load_set(photos: Path | None, settings: Settings) -> list[Sample]:
    """The labelled photos that are here (shared photos only when `photos` exists)."""
    from skimage import data

    labels = json.loads(LABELS.read_text())
    samples = []
    if photos and photos.is_dir():
        for name, entry in labels["photos"].items():
            raw = read_file(photos / name, settings.max_file_bytes)
            faces, ignore = [tuple(f) for f in entry["faces"]], [tuple(f) for f in entry.get("ignore", [])]
            samples.append(Sample(name, None, faces, ignore, data=raw))
    made = {"astronaut.png": data.astronaut(), "astronaut-1024.png": _resized(data.astronaut(), 1024)}
    for name, entry in labels["generated"].items():
        samples.append(Sample(name, made[name], [tuple(f) for f in entry["faces"]]))
    for name in labels["no_face"]:
        samples.append(Sample(name, _skimage(name), []))
    return samples


def candidates(settings: Settings, yunet: Path | None) -> dict[str, Callable[[], FaceDetector]]:
    """Every detector to compare, by the name the table uses."""
    from emotion_batch.detect.blazeface import BlazeFaceDetector, default_models
    from emotion_batch.detect.haar import HaarDetector
    from emotion_batch.detect.yunet import YuNetDetector

    common: dict[str, Any] = {"max_side": settings.detect_max_side, "min_face": settings.min_face}
    found: dict[str, Callable[[], FaceDetector]] = {}
    if yunet and yunet.is_file():
        first = settings.detect_first_side or None
        found["yunet"] = lambda: YuNetDetector(yunet, score=settings.face_score, first_side=first, **common)
    found["haar"] = lambda: HaarDetector(settings.haar_cascade, **common)
    found["haar minNeighbors=8 minSize=60"] = lambda: HaarDetector(
        settings.haar_cascade, max_side=settings.detect_max_side, min_face=60, min_neighbors=8
    )
    full, short = default_models()
    found["blazeface"] = lambda: BlazeFaceDetector(**common)
    found["blazeface unframed"] = lambda: BlazeFaceDetector(framing={}, **common)  # its own boxes, not YuNet's framing
    found["blazeface without tiles"] = lambda: BlazeFaceDetector(tiles=False, **common)
    found["blazeface full range only"] = lambda: BlazeFaceDetector((full,), **common)
    found["blazeface short range only"] = lambda: BlazeFaceDetector(((short[0], 0.5),), **common)
    try:
        import mtcnn  # noqa: F401  (optional: `pip install mtcnn lz4 joblib`)

        found["mtcnn"] = lambda: MtcnnDetector(settings.detect_max_side, settings.min_face)
    except ImportError:
        pass
    return found


class MtcnnDetector:
    """The `mtcnn` package (weights inside its wheel), for comparison only."""

    name = version = "mtcnn"

    def __init__(self, max_side: int, min_face: int) -> None:
        from mtcnn import MTCNN

        self._net = MTCNN()
        self.max_side, self.min_face = max_side, min_face

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        from emotion_batch.detect.base import downscale, to_original

        small, scale = downscale(rgb, self.max_side)
        found = self._net.detect_faces(np.ascontiguousarray(small), threshold_onet=0.9)
        boxes = np.array([f["box"] for f in found], dtype=np.float64).reshape(-1, 4)
        scores = np.array([f["confidence"] for f in found], dtype=np.float64)
        return to_original(boxes, scores, scale, rgb.shape, self.min_face)


@dataclass
class Row:
    """One detector's figures over the set."""

    name: str
    hits: int = 0
    false_on_faces: int = 0
    false_on_empty: int = 0
    labelled: int = 0
    photos_found: int = 0
    face_photos: int = 0
    millis: list[float] = field(default_factory=list)

    @property
    def precision(self) -> float:
        found = self.hits + self.false_on_faces + self.false_on_empty
        return self.hits / found if found else 0.0


def evaluate(name: str, detector: FaceDetector, samples: list[Sample], settings: Settings) -> Row:
    """Run `detector` over the set as the worker runs it (one warm-up call first)."""
    row = Row(name)
    decoded = [(sample, sample.image(detector, settings)) for sample in samples]
    find_boxes(detector, decoded[0][1], decoded[0][0].data, settings.max_pixels)
    for sample, image in decoded:
        started = time.perf_counter()
        image, boxes = find_boxes(detector, image, sample.data, settings.max_pixels)
        row.millis.append((time.perf_counter() - started) * 1000)
        found = [unscale(b, image.scale, image.width, image.height) for b in boxes]
        hits, false = match(found, sample.faces, sample.ignore)
        row.hits += hits
        if sample.faces:
            row.labelled += len(sample.faces)
            row.face_photos += 1
            row.photos_found += hits > 0
            row.false_on_faces += false
        else:
            row.false_on_empty += false
    return row


def table(rows: list[Row], samples: list[Sample]) -> str:
    """The markdown table printed and committed to bench/RESULTS.md."""
    empty = sum(not s.faces for s in samples)
    lines = [
        "| detector | precision | recall | face photos with a face found "
        f"| false faces on {empty} face-less photos | ms/image (median) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.precision:.1%} | {r.hits / max(1, r.labelled):.1%} ({r.hits}/{r.labelled}) "
            f"| {r.photos_found / max(1, r.face_photos):.1%} ({r.photos_found}/{r.face_photos}) "
            f"| {r.false_on_empty} | {statistics.median(r.millis):.1f} |"
        )
    return "\n".join(lines)


yunet_option = click.option(
    "--yunet",
    type=click.Path(path_type=Path),
    default=data_settings().shared_data / "detectors" / "face_detection_yunet_2023mar.onnx",
    show_default=True,
    help="YuNet's ONNX file (the reference detector).",
)


@click.command()
@click.option(
    "--photos",
    type=click.Path(path_type=Path),
    default=data_settings().shared_data / "photos",
    show_default=True,
    help="The labelled photos (skipped when absent).",
)
@yunet_option
@click.option("--only", default="", help="Comma-separated detector names (default: all).")
def main(photos: Path, yunet: Path, only: str) -> None:
    """Print the detector table."""
    import cv2

    cv2.setNumThreads(1)
    settings = Settings(_env_file=None)
    samples = load_set(photos, settings)
    chosen = [n.strip() for n in only.split(",") if n.strip()]
    rows = []
    for name, make in candidates(settings, yunet).items():
        if chosen and not any(name.startswith(c) for c in chosen):
            continue
        rows.append(evaluate(name, make(), samples, settings))
        click.echo(f"{name}: done", err=True)
    labelled = sum(len(s.faces) for s in samples)
    click.echo(
        f"{sum(bool(s.faces) for s in samples)} face photos ({labelled} faces), "
        f"{sum(not s.faces for s in samples)} face-less photos, IoU >= {IOU}, "
        f"detect_max_side={settings.detect_max_side}, decode_max_side={settings.decode_max_side}, "
        f"min_face={settings.min_face}, cv2 threads=1"
    )
    click.echo(table(rows, samples))


if __name__ == "__main__":
    main()
