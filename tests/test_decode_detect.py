"""Decode and detect no larger than needed (issue 26): YuNet's coarse-to-fine passes, JPEGs
decoded at the detector's size and finer only for a face too small to crop, grey only
around faces, and the classifier starting on a batch's faces while its last images are
still decoding, with a bad image still costing only itself."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage

from bench.detect import _skimage
from emotion_batch.config import Settings
from emotion_batch.crop import face_crop, face_crop_rgb
from emotion_batch.detect import FaceBox
from emotion_batch.detect.base import CoarseToFine
from emotion_batch.detect.yunet import FIRST_PASS_SIDE, YuNetDetector
from emotion_batch.imaging import decode_image
from emotion_batch.labels import EMOTIONS
from emotion_batch.pipeline import Analyzer, decode_side, find_boxes, fine_enough, rescaled
from tests.test_batch_inprocess import BoxDetector, BrightnessClassifier, outcomes, pending_job, run

MAX_PIXELS = 40_000_000


def scene(width: int, height: int, side: int, at: tuple[int, int]) -> np.ndarray:
    """A grey canvas with the astronaut shrunk to `side` pixels at `at` (her face is about
    a fifth of that)."""
    canvas = np.full((height, width, 3), 128, np.uint8)
    face = cv2.resize(_skimage("astronaut"), (side, side), interpolation=cv2.INTER_AREA)
    canvas[at[1] : at[1] + side, at[0] : at[0] + side] = face
    return canvas


def jpeg(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    PILImage.fromarray(rgb).save(out, "JPEG", quality=92)
    return out.getvalue()


def test_the_second_pass_finds_a_small_face_the_first_misses(yunet_model: Path) -> None:
    """A face of about 12 px at 640 and 9 px at 480: only the finer pass sees it, and it
    runs because the first found nothing."""
    rgb = scene(1280, 960, 128, (100, 100))
    detector = YuNetDetector(yunet_model, max_side=640, min_face=8)
    assert isinstance(detector, CoarseToFine) and detector.first_side == FIRST_PASS_SIDE < 480
    first, finer = detector.first_pass(rgb)
    assert (first, finer) == ([], True)
    (face,) = detector.detect(rgb)
    assert 100 + 128 * 0.2 < face.x + face.w / 2 < 100 + 128 * 0.6  # her face, in the given image's pixels
    assert YuNetDetector(yunet_model, max_side=480, min_face=8).detect(rgb) == []  # one pass at 480: missed


def test_the_first_pass_alone_serves_one_clear_face_and_a_crowd_gets_the_finer_pass(yunet_model: Path) -> None:
    detector = YuNetDetector(yunet_model)
    one = scene(1024, 768, 400, (300, 200))
    boxes, finer = detector.first_pass(one)
    assert len(boxes) == 1 and not finer
    two = np.concatenate([one, one], axis=1)
    boxes, finer = detector.first_pass(two)
    assert len(boxes) == 2 and finer
    assert not detector.gains_from_finer(FIRST_PASS_SIDE) and detector.gains_from_finer(FIRST_PASS_SIDE + 1)


def test_min_face_counts_in_the_original_photos_pixels(yunet_model: Path) -> None:
    """A face 28 px wide on a photo decoded at a quarter is 112 px in the original: kept
    with MIN_FACE 24 when the detector is told the scale, dropped when it is not."""
    rgb = scene(1280, 960, 150, (100, 100))
    detector = YuNetDetector(yunet_model, min_face=32)
    assert detector.detect(rgb, scale=1.0) == []
    assert len(detector.detect(rgb, scale=0.25)) == 1


def test_a_face_too_small_on_the_reduced_decode_is_cropped_from_a_finer_one(yunet_model: Path) -> None:
    """A 2560 px JPEG is decoded at a quarter for the detector; its face is about 35 px
    there, so it is decoded again at a half, where the face is wide enough to crop."""
    data = jpeg(scene(2560, 1920, 720, (800, 600)))
    settings = Settings(_env_file=None)
    detector = YuNetDetector(yunet_model)
    side = decode_side(detector, settings.decode_max_side)
    assert side == 640
    image = decode_image(data, MAX_PIXELS, side)
    assert image.scale == 0.25 and image.rgb.shape == (480, 640, 3)
    searched, boxes = find_boxes(detector, image, data, MAX_PIXELS)
    assert searched is image and len(boxes) == 1 and max(boxes[0].w, boxes[0].h) < 48
    finer, moved = fine_enough(searched, boxes, data, MAX_PIXELS, settings.face_margin)
    assert finer.scale == 0.5 and finer.rgb.shape == (960, 1280, 3)
    assert moved == (rescaled(boxes[0], 2.0),) and max(moved[0].w, moved[0].h) >= 48
    assert finer.sha256 == image.sha256 and (finer.width, finer.height) == (2560, 1920)


def test_the_analyzer_classifies_the_finer_crop(yunet_model: Path, tmp_path: Path) -> None:
    """The same photo through the pipeline: the classifier gets the crop of the finer
    decode, the box comes back in the original's pixels."""
    data = jpeg(scene(2560, 1920, 720, (800, 600)))
    (tmp_path / "big.jpg").write_bytes(data)
    settings = Settings(_env_file=None)
    classifier = RecordingClassifier()
    analyzer = Analyzer(lambda: YuNetDetector(yunet_model), classifier, settings)  # type: ignore[arg-type]
    try:
        (result,) = analyzer.analyze([str(tmp_path / "big.jpg")])
    finally:
        analyzer.close()
    assert result.error is None and len(result.faces) == 1
    box = result.faces[0].box
    assert 800 + 720 * 0.2 < box.x + box.w / 2 < 800 + 720 * 0.6  # in the original's pixels
    detector = YuNetDetector(yunet_model)
    coarse = decode_image(data, MAX_PIXELS, 640)
    (found,) = detector.detect(coarse.rgb, coarse.scale)
    finer = decode_image(data, MAX_PIXELS, 1280)
    expected = face_crop_rgb(finer.rgb, rescaled(found, 2.0), settings.face_margin, settings.face_align)
    from_coarse = face_crop_rgb(coarse.rgb, found, settings.face_margin, settings.face_align)
    (seen,) = classifier.faces
    assert np.array_equal(seen[..., 0], expected)
    assert not np.array_equal(seen[..., 0], from_coarse)


class RecordingClassifier(BrightnessClassifier):
    """Remembers the faces it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.faces: list[np.ndarray] = []

    def predict(self, faces: np.ndarray) -> np.ndarray:
        self.faces.extend(faces)
        return super().predict(faces)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_grey_crop_of_the_colour_image_is_the_crop_of_the_grey_image(seed: int) -> None:
    """Only the face's surroundings are turned grey: pixel for pixel the old crop, at the
    edges too, framed and aligned or not."""
    rng = np.random.default_rng(seed)
    for _ in range(300):
        height, width = (int(v) for v in rng.integers(30, 300, 2))
        rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        w, h = (int(v) for v in rng.integers(1, 200, 2))
        x, y = int(rng.integers(-20, width)), int(rng.integers(-20, height))
        tilt = np.radians(rng.uniform(-40, 40))
        eyes = ((x + w / 4, y + h / 3), (x + w / 4 + w / 2 * np.cos(tilt), y + h / 3 + w / 2 * np.sin(tilt)))
        box = FaceBox(x, y, w, h, 0.9, eyes if rng.random() < 0.7 else None)
        for margin in (1.0, 1.3):
            for align in (False, True):
                assert np.array_equal(face_crop_rgb(rgb, box, margin, align), face_crop(gray, box, margin, align))


@pytest.fixture
def big_job(tmp_path: Path):
    """40 flat grey JPEGs (widths 200..239, each a known emotion), the 11th not a JPEG at
    all, registered as one pending job."""
    paths = []
    for n in range(40):
        paths.append(tmp_path / f"p{n:02d}.jpg")
        grey = int((n % 6 + 0.5) * 256 / len(EMOTIONS))
        if n == 10:
            paths[-1].write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG" * 10)
        else:
            PILImage.new("RGB", (200 + n, 160), (grey, grey, grey)).save(paths[-1], quality=95)
    return pending_job(tmp_path, paths, 40)


def test_bad_images_mid_batch_are_errors_and_the_batch_is_one_classifier_call(big_job) -> None:
    """All 38 faces of the batch in one classifier call; the undecodable file and the one
    the detector fails on are that image's errors, every other image its answer."""
    settings, sessions, message = big_job
    classifier = BrightnessClassifier()
    summary = run(settings, message, BoxDetector(raise_on=220), classifier)
    assert classifier.calls == [38]
    assert (summary.analysed, summary.written, summary.faces) == (40, 40, 38)
    result = outcomes(sessions)
    assert result["p10.jpg"][:2] == ("failed", "corrupt or truncated image: Truncated File Read")
    assert result["p20.jpg"][:2] == ("failed", "face detection failed: RuntimeError: detector bug")
    for n in set(range(40)) - {10, 20}:
        status, _, _, faces = result[f"p{n:02d}.jpg"]
        assert (status, faces) == ("done", [EMOTIONS[n % 6]]), n


def test_early_faces_classifies_while_the_last_images_decode(tmp_path: Path) -> None:
    """With `early_faces` the faces found so far go first, beside the last decodes: two
    calls, every face classified once, a bad image still only its own error."""
    paths = []
    for n in range(40):
        paths.append(tmp_path / f"p{n:02d}.jpg")
        grey = int((n % 6 + 0.5) * 256 / len(EMOTIONS))
        PILImage.new("RGB", (200 + n, 160), (grey, grey, grey)).save(paths[-1], quality=95)
    paths[10].write_bytes(b"not a JPEG")
    classifier = BrightnessClassifier()
    detector = BoxDetector()
    analyzer = Analyzer(lambda: detector, classifier, Settings(_env_file=None), threads=2, early_faces=16)  # type: ignore[arg-type]
    try:
        results = analyzer.analyze([str(p) for p in paths])
    finally:
        analyzer.close()
    assert len(classifier.calls) == 2 and sum(classifier.calls) == 39 and classifier.calls[0] >= 16
    assert results[10].error and not results[10].faces
    assert [r.faces[0].dominant for n, r in enumerate(results) if n != 10] == [
        EMOTIONS[n % 6] for n in range(40) if n != 10
    ]


def test_a_small_batch_is_still_one_classifier_call(tmp_path: Path) -> None:
    for n in range(6):
        PILImage.new("RGB", (200 + n, 160), (90, 90, 90)).save(tmp_path / f"p{n}.jpg")
    classifier = BrightnessClassifier()
    analyzer = Analyzer(lambda: BoxDetector(), classifier, Settings(_env_file=None), threads=2)  # type: ignore[arg-type]
    try:
        results = analyzer.analyze([str(tmp_path / f"p{n}.jpg") for n in range(6)])
    finally:
        analyzer.close()
    assert classifier.calls == [6] and all(len(r.faces) == 1 for r in results)
