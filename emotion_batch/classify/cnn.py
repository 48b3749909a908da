"""Our own CNN, trained on FER2013 (see models/README.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from emotion_batch.errors import WeightsMissingError
from emotion_batch.hashing import sha256_file
from emotion_batch.labels import EMOTIONS

if TYPE_CHECKING:
    from emotion_batch.config import Settings


def cnn_model_version(runtime: str, weights: Path, flip_tta: bool, temperature: float = 1.0) -> str:
    """The file actually run (the .keras, or the .tflite exported from it), whether faces
    are averaged with their mirror image and the calibration temperature name the version:
    outputs differ."""
    tta = "-tta" if flip_tta else ""
    calibrated = f"-t{temperature:g}" if temperature != 1.0 else ""
    return f"cnn-{runtime}{tta}{calibrated}-{sha256_file(weights)[:16]}"


def expected_model_version(model_path: Path, flip_tta: bool | None = None) -> str | None:
    """The version a worker loading `model_path` will record, without loading it
    (`flip_tta` None: as the model card says)."""
    if not Path(model_path).is_file():
        return None
    from emotion_batch.runtime import resolve_runtime, served_flip_tta, served_temperature

    runtime, weights = resolve_runtime(model_path)
    flip = served_flip_tta(model_path, flip_tta)
    return cnn_model_version(runtime, weights, flip, served_temperature(model_path))


class CnnClassifier:
    """Keras model taking raw 0-255 grey 48x48 faces; rescaling happens inside the model."""

    name = "cnn"
    labels = EMOTIONS

    def __init__(self, model_path: Path, flip_tta: bool | None = None, threads: int | None = None) -> None:
        model_path = Path(model_path)
        if not model_path.is_file():
            raise WeightsMissingError(
                f"CNN model not found at {model_path}; set CNN_MODEL to a trained .keras file "
                "(models/README.md says how to train one)"
            )
        from emotion_batch.runtime import load_classifier_fn, resolve_runtime, served_flip_tta, served_temperature

        self.runtime, weights = resolve_runtime(model_path)
        self.model_path = model_path
        flip_tta = served_flip_tta(model_path, flip_tta)
        temperature = served_temperature(model_path)
        self.model_version = cnn_model_version(self.runtime, weights, flip_tta, temperature)
        self._predict = load_classifier_fn(
            model_path, self.runtime, flip_tta=flip_tta, threads=threads, temperature=temperature
        )

    @classmethod
    def from_settings(cls, settings: Settings, threads: int | None = None) -> CnnClassifier:
        """The model CNN_MODEL names, with CNN_FLIP_TTA (unset: as its card says); `threads`
        caps the TFLite interpreter."""
        return cls(settings.cnn_model, settings.cnn_flip_tta, threads)

    @staticmethod
    def expected_version(settings: Settings) -> str | None:
        """The version a worker with these settings records, without loading the model."""
        return expected_model_version(settings.cnn_model, settings.cnn_flip_tta)

    def predict(self, faces: np.ndarray) -> np.ndarray:
        """One model call for the whole batch."""
        if len(faces) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return np.asarray(self._predict(np.asarray(faces, dtype=np.uint8)), dtype=np.float32)
