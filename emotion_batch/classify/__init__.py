"""Emotion classifier backends behind one `EmotionClassifier` protocol."""

from __future__ import annotations

from emotion_batch.classify.base import EmotionClassifier, normalise
from emotion_batch.config import Settings
from emotion_batch.errors import ConfigurationError

__all__ = ["EmotionClassifier", "make_classifier", "expected_model_version", "normalise", "BACKENDS"]

BACKENDS = ("cnn", "deepface")


def make_classifier(backend: str, settings: Settings) -> EmotionClassifier:
    """Load the named backend's model (slow: call once per process)."""
    if backend == "cnn":
        from emotion_batch.classify.cnn import CnnClassifier

        return CnnClassifier(settings.cnn_model, settings.cnn_flip_tta)
    if backend == "deepface":
        from emotion_batch.classify.deepface import DeepFaceClassifier

        return DeepFaceClassifier(settings.deepface_home)
    raise ConfigurationError(f"unknown backend {backend!r}; choose one of {BACKENDS}")


def expected_model_version(backend: str, settings: Settings) -> str | None:
    """The model version a worker with these settings records for `backend`, computed
    without loading the model (hashing its file); None when the file is absent. The
    producer uses it to reuse earlier results at submit time."""
    if backend == "cnn":
        from emotion_batch.classify.cnn import expected_model_version as cnn_version

        return cnn_version(settings.cnn_model, settings.cnn_flip_tta)
    if backend == "deepface":
        from emotion_batch.classify.deepface import expected_model_version as deepface_version

        return deepface_version(settings.deepface_home)
    raise ConfigurationError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
