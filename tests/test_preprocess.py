"""emotion_batch.preprocess: the one path from a face crop to the classifier's 48x48 uint8 input."""

import cv2
import numpy as np
import pytest

from emotion_batch.preprocess import FACE_SIZE, preprocess_face, preprocess_faces


def test_identity_on_48x48_grey():
    face = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
    out = preprocess_face(face)
    assert out.dtype == np.uint8 and out.shape == (FACE_SIZE, FACE_SIZE)
    assert np.array_equal(out, face)


def test_single_channel_3d_is_squeezed():
    face = np.random.default_rng(1).integers(0, 256, (48, 48, 1), dtype=np.uint8)
    assert np.array_equal(preprocess_face(face), face[:, :, 0])


def test_rgb_and_rgba_become_the_same_grey():
    rgb = np.random.default_rng(2).integers(0, 256, (120, 90, 3), dtype=np.uint8)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    expected = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (48, 48), interpolation=cv2.INTER_AREA)
    assert np.array_equal(preprocess_face(rgb), expected)
    assert np.array_equal(preprocess_face(rgba), expected)


def test_uniform_colour_keeps_its_grey_level_when_resized():
    big = np.full((200, 160, 3), (10, 200, 30), dtype=np.uint8)
    small = np.full((20, 30), 77, dtype=np.uint8)
    grey = cv2.cvtColor(big[:1, :1], cv2.COLOR_RGB2GRAY)[0, 0]
    assert np.all(preprocess_face(big) == grey)
    assert np.all(preprocess_face(small) == 77)


def test_batch_shape_dtype_and_order():
    rng = np.random.default_rng(3)
    faces = [rng.integers(0, 256, s, dtype=np.uint8) for s in [(48, 48), (64, 64, 3), (30, 40, 4)]]
    batch = preprocess_faces(faces)
    assert batch.shape == (3, 48, 48, 1) and batch.dtype == np.uint8
    for i, face in enumerate(faces):
        assert np.array_equal(batch[i, :, :, 0], preprocess_face(face))


def test_empty_batch_and_bad_shape():
    assert preprocess_faces([]).shape == (0, 48, 48, 1)
    with pytest.raises(ValueError):
        preprocess_face(np.zeros((48, 48, 2), dtype=np.uint8))
