"""`skip`: no detection, the whole image is one face (DeepFace's `detector_backend="skip"`).

For folders of face crops (FER2013 itself, crops made elsewhere): each image is one face
whose box is the whole image, cropped and preprocessed for the classifier by the same
function as detected faces (grey, 48x48), without the margin a detector's box gets, as
the crop is already framed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emotion_batch.detect.base import FaceBox

WHOLE_IMAGE = "skip"
"""The detector name whose one box is the whole image (the pipeline adds no margin to it)."""


class SkipDetector:
    """Every image is one face: a box over all of it, confidence 1."""

    name = WHOLE_IMAGE
    version = WHOLE_IMAGE  # no model file: the name is the whole version

    @classmethod
    def version_of(cls, models: Sequence[Path] = ()) -> str:
        """Always `skip` (there is no model file to hash)."""
        del models
        return cls.version

    def __init__(self, *_: object, **__: object) -> None:
        """Takes (and ignores) the options other detectors are built with."""

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        """The whole image as the one face."""
        height, width = rgb.shape[:2]
        return [FaceBox(0, 0, width, height, 1.0)]
