"""Face detectors behind one `FaceDetector` protocol: YuNet (default) and Haar (fallback)."""

from __future__ import annotations

import os
from pathlib import Path

from emotion_batch.config import Settings
from emotion_batch.detect.base import FaceBox, FaceDetector
from emotion_batch.detect.haar import HaarDetector
from emotion_batch.detect.yunet import YUNET_FILE, YuNetDetector

__all__ = ["FaceBox", "FaceDetector", "HaarDetector", "YuNetDetector", "make_detector", "find_yunet"]


def find_yunet(settings: Settings) -> Path | None:
    """The YuNet file: the YUNET_MODEL setting, else the one DeepFace's yunet backend keeps."""
    if settings.yunet_model:
        return Path(settings.yunet_model)
    home = settings.deepface_home or os.environ.get("DEEPFACE_HOME") or Path.home()
    candidate = Path(home) / ".deepface" / "weights" / YUNET_FILE
    return candidate if candidate.is_file() else None


def make_detector(settings: Settings) -> FaceDetector:
    """Build the configured detector (`auto`: YuNet when its file exists, else Haar)."""
    common = {"max_side": settings.detect_max_side, "min_face": settings.min_face}
    yunet = find_yunet(settings)
    if settings.detector == "yunet" or (settings.detector == "auto" and yunet and yunet.is_file()):
        if yunet is None:
            yunet = Path(YUNET_FILE)
        return YuNetDetector(yunet, score=settings.face_score, **common)
    return HaarDetector(settings.haar_cascade, **common)
