"""The in-process analysis pipeline: decode -> detect -> crop -> one batched classify call.

No queue and no database here: the worker wraps this, and the benchmark's `ceiling`
measures it alone.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from emotion_batch.classify import EmotionClassifier, normalise
from emotion_batch.config import Settings
from emotion_batch.crop import face_crop
from emotion_batch.detect import FaceBox, FaceDetector
from emotion_batch.errors import CorruptImageError, ImageError, PathNotAllowedError
from emotion_batch.imaging import LoadedImage, decode_image, read_file

logger = logging.getLogger(__name__)


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
    All faces of the batch then go through the classifier in one call.
    """

    def __init__(
        self,
        detector_factory: Callable[[], FaceDetector],
        classifier: EmotionClassifier,
        settings: Settings,
        threads: int = 2,
    ) -> None:
        self.detector_factory = detector_factory
        self.classifier = classifier
        self.settings = settings
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

    def _load(self, path: str, known: Collection[str]) -> LoadedImage | ImageError | str:
        """Read one image once and decode it; its hash when that is `known`; or why it cannot be."""
        settings = self.settings
        try:
            resolved = check_allowed(path, settings.allowed_roots)
            data = read_file(resolved, settings.max_file_bytes)
            sha256 = hashlib.sha256(data).hexdigest()
            if sha256 in known:
                return sha256
            return decode_image(data, settings.max_pixels, settings.decode_max_side, sha256)
        except ImageError as exc:
            return exc
        except Exception as exc:  # a decoder bug must cost one image, not the batch
            logger.exception("unexpected error decoding %s", path)
            return CorruptImageError(f"unexpected decoder error {type(exc).__name__}: {exc}")

    def _detect(self, path: str, known: Collection[str] = frozenset()) -> _Detected:
        """Decode one image, find and crop its faces (runs in a pool thread)."""
        image = self._load(path, known)
        if isinstance(image, str):
            return _Detected(path, sha256=image, known=True)
        if isinstance(image, ImageError):
            return _Detected(path, error=str(image))
        return self._find_faces(path, image)

    def _find_faces(self, path: str, image: LoadedImage) -> _Detected:
        """Find and crop the faces of a decoded image."""
        try:
            boxes = tuple(self._detector().detect(image.rgb))
            gray = cv2.cvtColor(image.rgb, cv2.COLOR_RGB2GRAY) if boxes else np.zeros((0, 0), np.uint8)
            crops = tuple(face_crop(gray, b, self.settings.face_margin, self.settings.face_align) for b in boxes)
        except cv2.error as exc:  # an OpenCV failure on one image must not fail the batch
            logger.exception("face detection failed on %s", path)
            return _Detected(path, error=f"face detection failed: {exc}"[:300], sha256=image.sha256)
        original = tuple(unscale(b, image.scale, image.width, image.height) for b in boxes)
        return _Detected(path, None, image.width, image.height, image.taken_at, original, crops, image.sha256)

    def analyze(self, paths: Sequence[str], known: Collection[str] = frozenset()) -> list[ImageResult]:
        """Analyse images together: read, hash, decode and detect in threads, then one
        classifier call. An image whose content hash is in `known` is not decoded: its
        result comes back with `known=True` and its `sha256`, for the caller to fill in."""
        return self._classify(list(self._pool.map(lambda p: self._detect(p, known), paths)))

    def analyze_frames(self, frames: Sequence[np.ndarray], source: str) -> list[ImageResult]:
        """Analyse decoded RGB frames (of the video `source`) exactly like photos."""
        images = [LoadedImage(rgb, rgb.shape[1], rgb.shape[0], "video", None) for rgb in frames]
        return self._classify(list(self._pool.map(lambda im: self._find_faces(source, im), images)))

    def _classify(self, detected: list[_Detected]) -> list[ImageResult]:
        """All faces of the detected images through the classifier in one call."""
        crops = [crop for d in detected for crop in d.crops]
        faces = np.stack(crops)[..., None] if crops else np.zeros((0, 48, 48, 1), np.uint8)
        percents = normalise(self.classifier.predict(faces)) * 100.0
        return _assemble(detected, percents, self.classifier.labels)

    def close(self) -> None:
        """Stop the pool threads."""
        self._pool.shutdown(wait=False)


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
