"""Emotion classifier backends behind one `EmotionClassifier` protocol, registered in
`emotion_batch.registry.BACKENDS` (a name mapped to the class's import path, imported only
when that backend is loaded) and resolved by `classifier_class`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emotion_batch.classify.base import ClassifierClass, EmotionClassifier, normalise
from emotion_batch.registry import BACKENDS, resolve

if TYPE_CHECKING:
    from emotion_batch.config import Settings

__all__ = [
    "BACKENDS",
    "EmotionClassifier",
    "classifier_class",
    "expected_model_version",
    "make_classifier",
    "normalise",
]


def classifier_class(backend: str) -> ClassifierClass:
    """The classifier class registered as `backend` (imports its module)."""
    found: ClassifierClass = resolve(BACKENDS, backend, "backend")
    return found


def make_classifier(backend: str, settings: Settings, threads: int | None = None) -> EmotionClassifier:
    """Load the named backend's model (slow: call once per process).

    `threads` caps the threads its runtime uses (None: the runtime's own default).
    """
    return classifier_class(backend).from_settings(settings, threads=threads)


def expected_model_version(backend: str, settings: Settings) -> str | None:
    """The model version a worker with these settings records for `backend`, computed
    without loading the model (hashing its file); None when the file is absent. The
    producer uses it to reuse earlier results at submit time."""
    return classifier_class(backend).expected_version(settings)
