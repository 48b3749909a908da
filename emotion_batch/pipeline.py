"""The in-process analysis pipeline: decode -> detect -> crop -> one batched classify call.

No queue and no database here: the worker wraps this, and the benchmark's `ceiling`
measures it alone.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from billiard.exceptions import SoftTimeLimitExceeded

from emotion_batch.classify import EmotionClassifier, normalise
from emotion_batch.config import Settings
from emotion_batch.crop import face_crop_rgb
from emotion_batch.detect import WHOLE_IMAGE, FaceBox, FaceDetector
from emotion_batch.detect.base import CoarseToFine
from emotion_batch.errors import CorruptImageError, ImageError, PathNotAllowedError
from emotion_batch.imaging import LoadedImage, decode_image, read_file
from emotion_batch.preprocess import FACE_SIZE

logger = logging.getLogger(__name__)

EARLY_FACES = 16
"""Fewest faces worth a classifier call of their own while the batch's last images are
still being decoded (the classifier's rate per face drops in smaller calls)."""


@dataclass(frozen=True)
class FaceResult:
    """One face: where it is and the emotion percentages (summing to 100)."""

    box: FaceBox
    emotions: dict[str, float]
    dominant: str

    def to_deepface(self) -> dict[str, object]:
        """The dict `DeepFace.analyze(..., actions=["emotion"])` returns for one face."""
        box = self.box
        return {
            "emotion": dict(self.emotions),
            "dominant_emotion": self.dominant,
            "region": {"x": box.x, "y": box.y, "w": box.w, "h": box.h},
            "face_confidence": round(box.confidence, 2),
        }


@dataclass(frozen=True)
class ImageResult:
    """The outcome of one image: faces, or the reason it could not be analysed.

    `sha256` is the hash of the bytes that were read (None when the file could not be
    read). `known` is set, and nothing decoded, when that hash was among the `known`
    hashes given to `Analyzer.analyze`: the caller already has a result for it.
    """

    path: str
    error: str | None = None
    width: int | None = None
    height: int | None = None
    taken_at: datetime | None = None
    faces: tuple[FaceResult, ...] = field(default_factory=tuple)
    sha256: str | None = None
    known: bool = False


@dataclass(frozen=True)
class _Detected:
    path: str
    error: str | None = None
    width: int | None = None
    height: int | None = None
    taken_at: datetime | None = None
    boxes: tuple[FaceBox, ...] = ()
    crops: tuple[np.ndarray, ...] = ()
    sha256: str | None = None
    known: bool = False


def unscale(box: FaceBox, scale: float, width: int, height: int) -> FaceBox:
    """A box found on an image decoded at `scale`, in the original's pixels (clipped)."""
    if scale == 1.0:
        return box
    x, y = min(int(box.x / scale), width - 1), min(int(box.y / scale), height - 1)
    w, h = min(round(box.w / scale), width - x), min(round(box.h / scale), height - y)
    return FaceBox(x, y, w, h, box.confidence)


def rescaled(box: FaceBox, ratio: float) -> FaceBox:
    """A box (and its landmarks) on an image `ratio` times as large."""
    points = tuple((x * ratio, y * ratio) for x, y in box.landmarks) if box.landmarks else box.landmarks
    return FaceBox(
        int(box.x * ratio), int(box.y * ratio), round(box.w * ratio), round(box.h * ratio), box.confidence, points
    )


def decode_side(detector: FaceDetector, decode_max_side: int | None) -> int | None:
    """How large to decode a JPEG for `detector`: for a coarse-to-fine one, no larger than
    its finer pass looks at (its first pass shrinks that further; crops need a finer
    decode only for small faces, `fine_enough`); else DECODE_MAX_SIDE."""
    if decode_max_side and isinstance(detector, CoarseToFine):
        return min(decode_max_side, detector.max_side)
    return decode_max_side


def find_boxes(
    detector: FaceDetector, image: LoadedImage, data: bytes | None, max_pixels: int
) -> tuple[LoadedImage, tuple[FaceBox, ...]]:
    """The detector's boxes on `image`, in the pixels of the image returned with them. A
    coarse-to-fine detector looks again where its first pass asks; when `image` is too
    small for that second look, a finer decode of `data` is made for it (and returned,
    for the crops)."""
    if not isinstance(detector, CoarseToFine):
        return image, tuple(detector.detect(image.rgb))
    boxes, finer = detector.first_pass(image.rgb, image.scale)
    if not finer:
        return image, tuple(boxes)
    candidate = image
    if not detector.gains_from_finer(max(image.rgb.shape[:2])):
        candidate = decode_finer(image, data, detector.max_side, max_pixels) or image
    if detector.gains_from_finer(max(candidate.rgb.shape[:2])):
        return candidate, tuple(detector.fine_pass(candidate.rgb, candidate.scale))
    return image, tuple(boxes)


def fine_enough(
    image: LoadedImage, boxes: tuple[FaceBox, ...], data: bytes | None, max_pixels: int, margin: float
) -> tuple[LoadedImage, tuple[FaceBox, ...]]:
    """`image` and `boxes` as they are, unless a face crop (box side x `margin`) would be
    smaller than the classifier's input on this reduced decode: then a decode of `data`
    just fine enough for the smallest face (or the full image), the boxes moved onto it."""
    if not boxes or image.scale >= 1.0 or data is None:
        return image, boxes
    smallest = min(max(b.w, b.h) for b in boxes) * margin
    if smallest >= FACE_SIZE:
        return image, boxes
    side = math.ceil(max(image.width, image.height) * image.scale * FACE_SIZE / max(1.0, smallest))
    finer = decode_finer(image, data, side, max_pixels)
    if finer is None:
        return image, boxes
    ratio = finer.rgb.shape[1] / image.rgb.shape[1]
    return finer, tuple(rescaled(b, ratio) for b in boxes)


def decode_finer(image: LoadedImage, data: bytes | None, side: int, max_pixels: int) -> LoadedImage | None:
    """`data` (the bytes `image` was decoded from) decoded with a long side of at least
    `side` (in full when that is as large), or None when that is no finer or fails."""
    if data is None or image.scale >= 1.0:
        return None
    target = None if side >= max(image.width, image.height) else side
    try:
        finer = decode_image(data, max_pixels, target, image.sha256)
    except ImageError:  # decoded once already: keep that decode rather than fail the image
        logger.warning("finer decode failed for an image of %d bytes", len(data), exc_info=True)
        return None
    return finer if finer.rgb.shape[1] > image.rgb.shape[1] else None


def check_allowed(path: str, roots: Sequence[Path]) -> Path:
    """Resolve `path`; refuse it unless it lies under one of `roots` (empty: allow all)."""
    resolved = Path(path).resolve()
    if roots and not any(resolved.is_relative_to(Path(r).resolve()) for r in roots):
        raise PathNotAllowedError(str(path))
    return resolved


class Analyzer:
    """Detectors + classifier, reused for every batch a process handles.

    Each image is decoded and searched for faces in a small thread pool (PIL and OpenCV
    release the GIL); each thread has its own detector, as OpenCV's are not thread-safe.
    All faces of the batch go through the classifier in one call (what the worker
    promises). `early_faces`, off by default and measured by `bench.profile --overlap`,
    trades that for overlap: once only the last images are still being decoded, the faces
    found so far (at least `early_faces`) are classified beside them and the rest follow
    in a second call.
    """

    def __init__(
        self,
        detector_factory: Callable[[], FaceDetector],
        classifier: EmotionClassifier,
        settings: Settings,
        threads: int = 2,
        early_faces: int | None = None,
    ) -> None:
        self.detector_factory = detector_factory
        self.classifier = classifier
        self.settings = settings
        self.threads = threads
        self.early_faces = early_faces
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="analyze")

    @classmethod
    def from_settings(cls, settings: Settings, backend: str | None = None, threads: int | None = None) -> Analyzer:
        """The configured detector and `backend`'s classifier (default: the BACKEND setting).

        `threads` is both the decode/detect pool size and the classifier runtime's threads
        (None: 2 decode threads, the runtime's own default for the classifier).
        """
        from emotion_batch.classify import make_classifier
        from emotion_batch.detect import make_detector

        classifier = make_classifier(backend or settings.backend, settings, threads=threads)
        return cls(lambda: make_detector(settings), classifier, settings, threads=threads or 2)

    def _detector(self) -> FaceDetector:
        detector = getattr(self._local, "detector", None)
        if detector is None:
            detector = self._local.detector = self.detector_factory()
        return detector

    @property
    def detector_version(self) -> str:
        """The detector and its model file hash (`yunet-8f2383e4dd3cfbb4`), stored with results."""
        return self._detector().version

    def _load(
        self, path: str, known: Collection[str], side: int | None
    ) -> tuple[LoadedImage, bytes] | ImageError | str:
        """Read one image once and decode it (with the bytes, for a finer decode should a
        face need one); its hash when that is `known`; or why it cannot be."""
        settings = self.settings
        try:
            resolved = check_allowed(path, settings.allowed_roots)
            data = read_file(resolved, settings.max_file_bytes)
            sha256 = hashlib.sha256(data).hexdigest()
            if sha256 in known:
                return sha256
            return decode_image(data, settings.max_pixels, side, sha256), data
        except ImageError as exc:
            return exc
        except Exception as exc:  # a decoder bug must cost one image, not the batch
            logger.exception("unexpected error decoding %s", path)
            return CorruptImageError(f"unexpected decoder error {type(exc).__name__}: {exc}")

    def _detect(self, path: str, known: Collection[str] = frozenset()) -> _Detected:
        """Decode one image, find and crop its faces (runs in a pool thread)."""
        detector = self._detector()  # one that cannot be built is the process's problem, not the image's
        loaded = self._load(path, known, decode_side(detector, self.settings.decode_max_side))
        if isinstance(loaded, str):
            return _Detected(path, sha256=loaded, known=True)
        if isinstance(loaded, ImageError):
            return _Detected(path, error=str(loaded))
        return self._find_faces(path, *loaded)

    def _find_faces(self, path: str, image: LoadedImage, data: bytes | None = None) -> _Detected:
        """Find and crop the faces of a decoded image; a failure fails this image alone.
        `data` (the file's bytes) allows a finer decode where the first was too coarse."""
        detector = self._detector()
        try:
            image, boxes = find_boxes(detector, image, data, self.settings.max_pixels)
            image, boxes = fine_enough(image, boxes, data, self.settings.max_pixels, self._margin(detector))
            crops = self._crops(detector, image.rgb, boxes)
        except Exception as exc:  # a detector or crop bug on one image must not fail the batch
            logger.exception("face detection failed on %s", path)
            reason = f"face detection failed: {type(exc).__name__}: {exc}"[:300]
            return _Detected(path, error=reason, sha256=image.sha256)
        original = tuple(unscale(b, image.scale, image.width, image.height) for b in boxes)
        return _Detected(path, None, image.width, image.height, image.taken_at, original, crops, image.sha256)

    def _margin(self, detector: FaceDetector) -> float:
        # a whole-image "face" is already framed as the user wants it: no margin around it
        return 1.0 if detector.name == WHOLE_IMAGE else self.settings.face_margin

    def _crops(self, detector: FaceDetector, rgb: np.ndarray, boxes: tuple[FaceBox, ...]) -> tuple[np.ndarray, ...]:
        """The classifier's 48x48 grey face for each box on `rgb`."""
        margin = self._margin(detector)
        crops = tuple(face_crop_rgb(rgb, b, margin, self.settings.face_align) for b in boxes)
        if any(c.shape != (FACE_SIZE, FACE_SIZE) or c.dtype != np.uint8 for c in crops):
            raise ValueError(f"a face crop is not a {FACE_SIZE}x{FACE_SIZE} grey image")
        return crops

    def analyze(self, paths: Sequence[str], known: Collection[str] = frozenset()) -> list[ImageResult]:
        """Analyse images together: read, hash, decode and detect in threads, then one
        classifier call. An image whose content hash is in `known` is not decoded: its
        result comes back with `known=True` and its `sha256`, for the caller to fill in."""
        return self._gather([self._pool.submit(self._detect, path, known) for path in paths])

    def analyze_frames(self, frames: Sequence[np.ndarray], source: str) -> list[ImageResult]:
        """Analyse decoded RGB frames (of the video `source`) exactly like photos."""
        images = [LoadedImage(rgb, rgb.shape[1], rgb.shape[0], "video", None) for rgb in frames]
        return self._gather([self._pool.submit(self._find_faces, source, image) for image in images])

    def _gather(self, futures: list[Future[_Detected]]) -> list[ImageResult]:
        """The detected images, in order, classified: the faces found so far once only the
        last `threads` images are left in the pool (see the class), the rest at the end."""
        results: list[ImageResult] = []
        ready: list[_Detected] = []
        try:
            for index, future in enumerate(futures):
                ready.append(future.result())
                in_flight = len(futures) - index - 1
                early = self.early_faces is not None and not results and 0 < in_flight <= self.threads
                if early and sum(len(d.crops) for d in ready) >= (self.early_faces or 0):
                    results += self._classify(ready)
                    ready = []
        except BaseException:  # out of time, or killed: drop the images not started yet
            for future in futures:
                future.cancel()
            raise
        if results and not any(d.crops for d in ready):  # no faces left: no second call
            return results + _assemble(ready, np.zeros((0, len(self.classifier.labels))), self.classifier.labels)
        return results + self._classify(ready)

    def _classify(self, detected: list[_Detected]) -> list[ImageResult]:
        """All faces of the detected images through the classifier in one call. Should
        that call raise, each image's faces are classified on their own, so that only the
        image the classifier cannot take fails (with the reason)."""
        try:
            percents = self._percents([crop for d in detected for crop in d.crops])
        except SoftTimeLimitExceeded:
            raise  # out of time, not a bad image: the worker retries the batch image by image
        except Exception:  # noqa: BLE001  (narrowed down to the image below)
            logger.exception("classifier failed on a batch of %d images; classifying them one by one", len(detected))
            return [self._classify_alone(d) for d in detected]
        return _assemble(detected, percents, self.classifier.labels)

    def _classify_alone(self, detected: _Detected) -> ImageResult:
        """One image's faces in a call of their own; a failure is this image's error."""
        if detected.crops:
            try:
                return _assemble([detected], self._percents(list(detected.crops)), self.classifier.labels)[0]
            except SoftTimeLimitExceeded:
                raise
            except Exception as exc:  # noqa: BLE001  (recorded against this image)
                logger.exception("classifier failed on %s", detected.path)
                detected = _failed(detected, f"emotion classifier failed: {type(exc).__name__}: {exc}"[:300])
        return _assemble([detected], np.zeros((0, len(self.classifier.labels))), self.classifier.labels)[0]

    def _percents(self, crops: list[np.ndarray]) -> np.ndarray:
        """(N, labels) percentages for N 48x48 faces, in one classifier call; raises when
        the classifier answers with the wrong shape or with scores that are not numbers."""
        faces = np.stack(crops)[..., None] if crops else np.zeros((0, FACE_SIZE, FACE_SIZE, 1), np.uint8)
        raw = np.asarray(self.classifier.predict(faces), dtype=np.float64)
        if raw.shape != (len(crops), len(self.classifier.labels)) or not np.isfinite(raw).all():
            raise ValueError(f"classifier answered {raw.shape} scores (finite: {np.isfinite(raw).all()})")
        return normalise(raw) * 100.0

    def close(self) -> None:
        """Stop the pool threads."""
        self._pool.shutdown(wait=False)


def _failed(detected: _Detected, reason: str) -> _Detected:
    """`detected` as an image that could not be analysed, for `reason` (its hash kept)."""
    return _Detected(detected.path, error=reason, sha256=detected.sha256)


def _assemble(detected: list[_Detected], percents: np.ndarray, labels: tuple[str, ...]) -> list[ImageResult]:
    results, row = [], 0
    dominant = np.argmax(percents, axis=1) if len(percents) else np.zeros(0, dtype=int)
    for d in detected:
        faces = []
        for box in d.boxes:
            emotions = dict(zip(labels, percents[row].tolist()))
            faces.append(FaceResult(box, emotions, labels[int(dominant[row])]))
            row += 1
        results.append(ImageResult(d.path, d.error, d.width, d.height, d.taken_at, tuple(faces), d.sha256, d.known))
    return results
