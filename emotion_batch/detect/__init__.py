"""Face detectors behind one `FaceDetector` protocol, registered in
`emotion_batch.registry.DETECTORS` and resolved by `detector_class`:

- `yunet`: OpenCV's YuNet (the default): YUNET_MODEL, else MODEL_CACHE, else DeepFace's
  copy, else downloaded into MODEL_CACHE on first use (`emotion_batch.detect.fetch`);
- `blazeface`: MediaPipe's BlazeFace (full + short range), whose files come inside a PyPI wheel: the
  fallback when YuNet cannot be had (chosen by measurement, bench/detect.py);
- `haar`: OpenCV's Haar cascade, kept for comparison and for explicit use;
- `skip`: no detection, the whole image is one face (folders of face crops).

`auto` (DETECTOR's default) is YuNet when its file is here or can be downloaded, else
BlazeFace, with one line saying which file to place where.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emotion_batch.config import Settings
from emotion_batch.detect.base import DetectorClass, FaceBox, FaceDetector
from emotion_batch.detect.fetch import YUNET, cached, fetch
from emotion_batch.detect.skip import WHOLE_IMAGE
from emotion_batch.detect.yunet import YUNET_FILE
from emotion_batch.errors import ConfigurationError, WeightsMissingError
from emotion_batch.registry import AUTO_DETECTOR, DETECTOR_NAMES, DETECTORS, resolve

__all__ = [
    "DETECTORS",
    "SETUPS",
    "DetectorChoice",
    "FaceBox",
    "FaceDetector",
    "WHOLE_IMAGE",
    "choose_detector",
    "detector_class",
    "find_yunet",
    "for_detector",
    "make_detector",
]

Models = tuple[tuple[Path, float], ...]
"""A detector's model files, each with its score threshold."""

logger = logging.getLogger(__name__)


def detector_class(name: str) -> DetectorClass:
    """The detector class registered as `name` (imports its module)."""
    found: DetectorClass = resolve(DETECTORS, name, "detector")
    return found


@dataclass(frozen=True)
class DetectorChoice:
    """Which detector a process uses, its model file(s) and their score thresholds."""

    name: str
    models: Models

    @property
    def model(self) -> Path:
        return self.models[0][0]

    @property
    def version(self) -> str:
        """`name-<sha256 prefix>`: what results store and the reuse key compares (the same
        string the built detector carries)."""
        return detector_class(self.name).version_of([path for path, _ in self.models])


def find_yunet(settings: Settings) -> Path | None:
    """A YuNet file already here: YUNET_MODEL, else MODEL_CACHE, else DeepFace's copy."""
    if settings.yunet_model:
        return Path(settings.yunet_model)
    in_cache = cached(YUNET, settings.model_cache)
    if in_cache:
        return in_cache
    candidate = Path(settings.deepface_home) / ".deepface" / "weights" / YUNET_FILE
    return candidate if candidate.is_file() else None


def _yunet(settings: Settings) -> Models:
    """YuNet's file, downloaded into MODEL_CACHE when allowed and not here yet."""
    found = find_yunet(settings)
    if not found and not settings.model_download:
        target = Path(settings.model_cache) / YUNET.name
        raise WeightsMissingError(
            f"{YUNET.what} not here and MODEL_DOWNLOAD=false: {YUNET.place_hint(target)}",
            short=f"{YUNET.what} not here and MODEL_DOWNLOAD=false",
            downloadable=True,
        )
    found = found or fetch(YUNET, settings.model_cache, settings.yunet_url, settings.download_timeout)
    return ((found, settings.face_score),)


def _blazeface(settings: Settings) -> Models:
    if settings.blazeface_model:
        from emotion_batch.detect.blazeface import FULL_SCORE

        return ((Path(settings.blazeface_model), FULL_SCORE),)
    from emotion_batch.detect.blazeface import default_models

    return default_models()


def _haar(settings: Settings) -> Models:
    from emotion_batch.detect.haar import default_cascade

    return ((Path(settings.haar_cascade) if settings.haar_cascade else default_cascade(), 0.0),)


def _common(settings: Settings) -> dict[str, Any]:
    """What every detector is built with besides its files."""
    return {"max_side": settings.detect_max_side, "min_face": settings.min_face}


@dataclass(frozen=True)
class DetectorSetup:
    """How settings become one registered detector: its model files (`models`), and the
    call building the class on the choice (`build`: the constructors differ)."""

    models: Callable[[Settings], Models]
    build: Callable[[Any, DetectorChoice, Settings], FaceDetector]


SETUPS: dict[str, DetectorSetup] = {
    "yunet": DetectorSetup(
        _yunet,
        lambda cls, c, s: cls(c.model, score=c.models[0][1], first_side=s.detect_first_side or None, **_common(s)),
    ),
    "blazeface": DetectorSetup(_blazeface, lambda cls, c, s: cls(c.models, **_common(s))),
    "haar": DetectorSetup(_haar, lambda cls, c, s: cls(c.model, **_common(s))),
    WHOLE_IMAGE: DetectorSetup(lambda _settings: (), lambda cls, c, s: cls(**_common(s))),
}


_choices: dict[tuple, DetectorChoice] = {}
_lock = threading.Lock()


def choose_detector(settings: Settings) -> DetectorChoice:
    """Decide the detector once per process and settings (the download is tried once)."""
    key = (
        settings.detector,
        settings.yunet_model,
        settings.blazeface_model,
        settings.haar_cascade,
        str(settings.model_cache),
        settings.model_download,
        settings.yunet_url,
        settings.deepface_home,
    )
    with _lock:
        if key not in _choices:
            _choices[key] = _choose(settings)
        return _choices[key]


def _choose(settings: Settings) -> DetectorChoice:
    name = settings.detector
    if name != AUTO_DETECTOR:
        return DetectorChoice(name, SETUPS[name].models(settings))
    try:
        return DetectorChoice("yunet", _yunet(settings))
    except WeightsMissingError as exc:
        _tell_fallback(exc.short)
        return DetectorChoice("blazeface", _blazeface(settings))


_fallbacks_told: set[str] = set()


def _tell_fallback(why: str) -> None:
    """Each reason once per process, in one short line (every offline run meets it);
    `producer models fetch` gives the long story: where to put the file by hand."""
    if why not in _fallbacks_told:  # called under `_lock`
        _fallbacks_told.add(why)
        logger.warning("%s; using BlazeFace (DETECTOR=auto; `producer models fetch` gets YuNet)", why)


def make_detector(settings: Settings) -> FaceDetector:
    """Build the configured detector (`auto`: YuNet, fetched if need be, else BlazeFace)."""
    choice = choose_detector(settings)
    return SETUPS[choice.name].build(detector_class(choice.name), choice, settings)


def for_detector(settings: Settings, detector: str | None) -> Settings:
    """`settings` with DETECTOR set to `detector`, a job's own choice (None: as they are)."""
    if detector is None or detector == settings.detector:
        return settings
    if detector not in DETECTOR_NAMES:
        raise ConfigurationError(f"unknown detector {detector!r}; choose one of {', '.join(DETECTOR_NAMES)}")
    return settings.model_copy(update={"detector": detector})


def expected_detector_version(settings: Settings) -> str | None:
    """The detector version a worker with these settings stores (submit-time reuse),
    decided as the worker decides it (`choose_detector`, models hashed, never loaded):
    `auto` without a YuNet file tries the download a worker would try, and offline names
    BlazeFace as the worker will; None when the detector's file is missing or unreadable
    (YUNET_MODEL naming no file: the worker refuses to start, nothing to reuse)."""
    try:
        return choose_detector(settings).version
    except (WeightsMissingError, OSError):
        return None
