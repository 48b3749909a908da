"""Emotion classifier backends behind one `EmotionClassifier` protocol, and their registry.

`BACKENDS` is the one list of backends (rq's serializer aliases are the shape): a name
mapped to the classifier class's import path, imported only when that backend is loaded.
The CLI's `--backend` choices, the settings' validation, the worker, the evaluation and
the benchmarks all go through it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from emotion_batch.classify.base import ClassifierClass, EmotionClassifier, normalise
from emotion_batch.errors import ConfigurationError

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

BACKENDS: dict[str, str] = {
    "cnn": "emotion_batch.classify.cnn:CnnClassifier",
    "deepface": "emotion_batch.classify.deepface:DeepFaceClassifier",
}


def classifier_class(backend: str) -> ClassifierClass:
    """The classifier class registered as `backend` (imports its module)."""
    try:
        module, _, name = BACKENDS[backend].partition(":")
    except KeyError:
        raise ConfigurationError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}") from None
    found: ClassifierClass = getattr(import_module(module), name)
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
