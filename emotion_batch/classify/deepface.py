"""DeepFace's pre-trained emotion model, called on whole batches.

Weights come from `$DEEPFACE_HOME/.deepface/weights/facial_expression_model_weights.h5`;
where it is absent DeepFace's own downloader fetches it (on a machine with internet).
The model version names the weights file's sha256, so results of different weights
(DeepFace's published file, a stand-in) never mix.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from emotion_batch.errors import WeightsMissingError
from emotion_batch.hashing import sha256_file

if TYPE_CHECKING:
    from emotion_batch.config import Settings

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "facial_expression_model_weights.h5"
# DeepFace's label order (deepface.models.demography.DemographyUtils.EMOTION_LABELS).
DEEPFACE_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def weights_path(deepface_home: Path) -> Path:
    """Where DeepFace keeps (or downloads) its emotion weights."""
    return Path(deepface_home) / ".deepface" / "weights" / WEIGHTS_FILE


def deepface_model_version(weights: Path) -> str:
    """The version recorded with results of the weights in `weights`."""
    return f"deepface-emotion-{sha256_file(weights)[:16]}"


def expected_model_version(deepface_home: Path) -> str | None:
    """The version a worker with this DEEPFACE_HOME will record, without loading the model."""
    weights = weights_path(deepface_home)
    return deepface_model_version(weights) if weights.is_file() else None


def configure_deepface(deepface_home: Path) -> None:
    """Hand our DEEPFACE_HOME setting to the deepface library.

    deepface takes its configuration only from environment variables, so this writes
    them (it reads nothing back: the value comes from `Settings.deepface_home`).
    """
    os.environ["DEEPFACE_HOME"] = str(deepface_home)
    os.environ["DEEPFACE_BACKEND_ENGINE"] = "tensorflow"


def _build_deepface_model(deepface_home: Path):
    configure_deepface(deepface_home)
    from deepface import DeepFace

    try:
        return DeepFace.build_model(task="facial_attribute", model_name="Emotion")
    except Exception as exc:  # DeepFace raises bare ValueError/ConnectionError on download failure
        target = weights_path(deepface_home)
        if target.is_file():
            raise
        raise WeightsMissingError(
            f"DeepFace emotion weights missing: put {WEIGHTS_FILE} at {target} "
            f"(or set DEEPFACE_HOME); DeepFace's download failed: {exc}"
        ) from exc


class DeepFaceClassifier:
    """DeepFace's emotion CNN; faces scaled to [0, 1] exactly as DeepFace feeds them."""

    name = "deepface"
    labels = DEEPFACE_LABELS

    def __init__(self, deepface_home: Path) -> None:
        client = _build_deepface_model(deepface_home)
        self._model = client.model
        self.weights = weights_path(deepface_home)
        self.model_version = deepface_model_version(self.weights)

    @classmethod
    def from_settings(cls, settings: Settings, threads: int | None = None) -> DeepFaceClassifier:
        """DeepFace's model from DEEPFACE_HOME; Keras follows the process-wide TF threads."""
        del threads  # a Keras model: `emotion_batch.tfsetup.configure_tensorflow` sets them
        return cls(settings.deepface_home)

    @staticmethod
    def expected_version(settings: Settings) -> str | None:
        """The version a worker with these settings records, without loading the model."""
        return expected_model_version(settings.deepface_home)

    def predict(self, faces: np.ndarray) -> np.ndarray:
        """One `predict_on_batch` call for every face of the batch."""
        if len(faces) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        batch = np.asarray(faces, dtype=np.float32) / 255.0
        return np.asarray(self._model.predict_on_batch(batch), dtype=np.float32)
