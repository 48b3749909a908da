"""One preprocessing path shared by training and the worker.

A face cropped from a photo reaches the model exactly as a FER2013 training image did:
a 48x48 single-channel uint8 array of raw grey levels 0-255. Scaling to the model's
range happens inside the model (a Rescaling layer), never here.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

FACE_SIZE = 48


def to_gray(image: np.ndarray) -> np.ndarray:
    """Return a 2-D uint8 grey image from a grey, RGB or RGBA uint8 array."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2GRAY)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    raise ValueError(f"unsupported image shape {image.shape}")


def preprocess_face(face: np.ndarray) -> np.ndarray:
    """Turn one face crop (grey or RGB, any size) into a 48x48 uint8 grey array."""
    gray = to_gray(np.asarray(face, dtype=np.uint8))
    if gray.shape == (FACE_SIZE, FACE_SIZE):
        return np.ascontiguousarray(gray)
    shrinking = gray.shape[0] > FACE_SIZE or gray.shape[1] > FACE_SIZE
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(gray, (FACE_SIZE, FACE_SIZE), interpolation=interpolation)


def preprocess_faces(faces: Sequence[np.ndarray]) -> np.ndarray:
    """Stack face crops into one (N, 48, 48, 1) uint8 batch for the classifier."""
    batch = np.empty((len(faces), FACE_SIZE, FACE_SIZE, 1), dtype=np.uint8)
    for i, face in enumerate(faces):
        batch[i, :, :, 0] = preprocess_face(face)
    return batch
