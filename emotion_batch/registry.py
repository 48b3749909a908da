"""The classifier backends and face detectors there are, each registered one way: a name
mapped to its class's import path (rq's serializer aliases are the shape), imported only
when that one is used. The CLI's choices, the settings' validation, the worker, the
evaluation and the benchmarks all go through these two dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Any

from emotion_batch.errors import ConfigurationError

BACKENDS: dict[str, str] = {
    "cnn": "emotion_batch.classify.cnn:CnnClassifier",
    "deepface": "emotion_batch.classify.deepface:DeepFaceClassifier",
}

DETECTORS: dict[str, str] = {
    "yunet": "emotion_batch.detect.yunet:YuNetDetector",
    "blazeface": "emotion_batch.detect.blazeface:BlazeFaceDetector",
    "haar": "emotion_batch.detect.haar:HaarDetector",
    "skip": "emotion_batch.detect.skip:SkipDetector",
}

AUTO_DETECTOR = "auto"
"""DETECTOR's default: YuNet when its file is here or can be downloaded, else BlazeFace."""

DETECTOR_NAMES: tuple[str, ...] = (AUTO_DETECTOR, *DETECTORS)
"""What DETECTOR and `--detector` accept."""


def resolve(registry: Mapping[str, str], name: str, what: str) -> Any:
    """The class registered as `name` in `registry` (imports its module); `what` names
    the kind in the error ("backend", "detector")."""
    try:
        module, _, attribute = registry[name].partition(":")
    except KeyError:
        raise ConfigurationError(f"unknown {what} {name!r}; choose one of {', '.join(registry)}") from None
    return getattr(import_module(module), attribute)


def check_name(registry: Mapping[str, str], name: str, what: str) -> str:
    """`name` when it is registered, else a ValueError naming the choices (for validators)."""
    if name not in registry:
        raise ValueError(f"unknown {what} {name!r}; choose one of {', '.join(registry)}")
    return name
