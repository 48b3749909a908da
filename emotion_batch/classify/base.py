"""The emotion classifier interface shared by every backend."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from emotion_batch.config import Settings


@runtime_checkable
class EmotionClassifier(Protocol):
    """Classifies a whole batch of faces in one model call."""

    name: str
    labels: tuple[str, ...]
    model_version: str

    def predict(self, faces: np.ndarray) -> np.ndarray:
        """(N, 48, 48, 1) uint8 grey faces -> (N, len(labels)) float32 probabilities."""
        ...


class ClassifierClass(Protocol):
    """What the backend registry needs of a classifier class."""

    def from_settings(self, settings: Settings, threads: int | None = None) -> EmotionClassifier:
        """Load the model the settings name (slow: once per process)."""
        ...

    def expected_version(self, settings: Settings) -> str | None:
        """The model version results will carry, without loading the model."""
        ...


def normalise(probabilities: np.ndarray) -> np.ndarray:
    """Rows that sum to exactly 1 in float64 (softmax outputs drift by ~1e-7)."""
    probs = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, None)
    total = probs.sum(axis=1, keepdims=True)
    total[total == 0] = 1.0
    return probs / total
