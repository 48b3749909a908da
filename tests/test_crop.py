"""Face crops: framing (margin), eye alignment and faces at the image edge."""

import math

import cv2
import numpy as np
import pytest

from emotion_batch.crop import eye_angle, face_crop
from emotion_batch.detect.base import FaceBox, to_original


def two_eyes(angle_deg: float, size: int = 400, gap: int = 120) -> tuple[np.ndarray, FaceBox]:
    """A dark image with two bright 'eyes' on a line tilted by angle_deg (image coords)."""
    gray = np.zeros((size, size), np.uint8)
    c = size / 2
    t = math.radians(angle_deg)
    right = (c - gap / 2 * math.cos(t), c - gap / 2 * math.sin(t))
    left = (c + gap / 2 * math.cos(t), c + gap / 2 * math.sin(t))
    for x, y in (right, left):
        cv2.circle(gray, (int(round(x)), int(round(y))), 12, 255, -1)
    box = FaceBox(int(c - 100), int(c - 100), 200, 200, 0.9, (right, left))
    return gray, box


def blob_rows(crop: np.ndarray) -> list[float]:
    """Centroid rows of the two bright blobs of a crop, left to right."""
    _, labels, stats, centroids = cv2.connectedComponentsWithStats((crop > 127).astype(np.uint8))
    blobs = sorted(centroids[1:], key=lambda c: c[0])
    assert len(blobs) == 2, stats
    return [float(b[1]) for b in blobs]


@pytest.mark.parametrize("angle", [-20.0, -8.0, 12.0, 20.0])
def test_alignment_levels_the_eyes(angle):
    gray, box = two_eyes(angle)
    assert eye_angle(box) == pytest.approx(angle, abs=0.5)
    tilted = blob_rows(face_crop(gray, box, align=False))
    aligned = blob_rows(face_crop(gray, box, align=True))
    assert abs(tilted[0] - tilted[1]) > 3
    assert abs(aligned[0] - aligned[1]) < 1.0


def test_eye_order_does_not_matter_and_steep_lines_are_ignored():
    _, box = two_eyes(12.0)
    swapped = FaceBox(box.x, box.y, box.w, box.h, box.confidence, box.landmarks[::-1])
    assert eye_angle(swapped) == pytest.approx(eye_angle(box))
    _, steep = two_eyes(70.0)
    assert eye_angle(steep) == 0.0


def test_margin_widens_the_frame():
    gray, box = two_eyes(0.0)
    tight = face_crop(gray, box, margin=1.0)
    wide = face_crop(gray, box, margin=2.0)
    assert tight.shape == wide.shape == (48, 48)
    spread = lambda crop: np.ptp(np.nonzero(crop > 127)[1])  # noqa: E731
    assert spread(wide) == pytest.approx(spread(tight) / 2, abs=2)


def test_a_face_at_the_corner_keeps_its_aspect():
    gray = np.full((100, 100), 50, np.uint8)
    gray[:40, :40] = 200
    crop = face_crop(gray, FaceBox(0, 0, 40, 40, 0.9), margin=1.5)
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    assert crop[0, 0] == 200 and crop[-1, -1] == 50  # border repeated, not stretched


def test_without_landmarks_alignment_is_a_no_op():
    gray, box = two_eyes(15.0)
    plain = FaceBox(box.x, box.y, box.w, box.h, box.confidence)
    np.testing.assert_array_equal(face_crop(gray, plain, align=True), face_crop(gray, plain, align=False))


def test_landmarks_follow_the_boxes_back_to_the_original_scale():
    boxes = np.array([[10, 20, 30, 30]], np.float64)
    marks = np.array([[15, 25, 35, 25, 25, 35, 18, 45, 32, 45]], np.float64)
    (face,) = to_original(boxes, np.array([0.9]), 0.5, (200, 200, 3), 8, landmarks=marks)
    assert (face.x, face.y, face.w, face.h) == (20, 40, 60, 60)
    assert face.landmarks[0] == (30.0, 50.0) and face.landmarks[1] == (70.0, 50.0)


def test_yunet_gives_eye_landmarks_inside_its_boxes(photos_dir, yunet_model):
    from emotion_batch.detect.yunet import YuNetDetector

    rgb = cv2.cvtColor(cv2.imread(str(photos_dir / "couple.jpg")), cv2.COLOR_BGR2RGB)
    faces = YuNetDetector(yunet_model).detect(rgb)
    assert faces
    for f in faces:
        assert f.landmarks is not None and len(f.landmarks) == 5
        (rx, ry), (lx, ly) = f.landmarks[:2]
        assert f.x <= rx < lx <= f.x + f.w and f.y <= min(ry, ly) <= f.y + f.h / 2 + 1
