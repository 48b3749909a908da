"""Image decoding: odd encodings decode upright, bad input raises a clear ImageError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emotion_batch.errors import ImageError
from emotion_batch.imaging import load_image
from tests.corpus import write_bad_corpus, write_odd_formats

MAX_PIXELS, MAX_BYTES = 40_000_000, 100_000_000


@pytest.fixture(scope="module")
def face_photo(photos_dir: Path) -> Path:
    return photos_dir / "img12.jpg"


def test_bad_corpus_raises_the_expected_reason(tmp_path: Path, face_photo: Path) -> None:
    expected = write_bad_corpus(tmp_path, face_photo)
    for name, (status, reason) in expected.items():
        if status == "failed":
            with pytest.raises(ImageError) as info:
                load_image(tmp_path / name, MAX_PIXELS, MAX_BYTES)
            assert reason in str(info.value), name
        else:
            assert load_image(tmp_path / name, MAX_PIXELS, MAX_BYTES).rgb.ndim == 3


def test_odd_formats_decode_to_rgb(tmp_path: Path, face_photo: Path) -> None:
    for path in write_odd_formats(tmp_path, face_photo):
        image = load_image(path, MAX_PIXELS, MAX_BYTES)
        assert image.rgb.dtype == np.uint8 and image.rgb.shape[2] == 3, path.name
        assert image.rgb.std() > 10, path.name  # not blank: 16-bit scaled, alpha composited


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    upright = Image.new("RGB", (300, 200), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "r.jpg", exif=exif)
    assert load_image(tmp_path / "r.jpg", MAX_PIXELS, MAX_BYTES).rgb.shape[:2] == (200, 300)


def test_file_size_guard_and_missing(tmp_path: Path) -> None:
    Image.new("RGB", (64, 64)).save(tmp_path / "a.png")
    with pytest.raises(ImageError, match="image too large"):
        load_image(tmp_path / "a.png", MAX_PIXELS, 10)
    with pytest.raises(ImageError, match="file missing"):
        load_image(tmp_path / "gone.png", MAX_PIXELS, MAX_BYTES)
    with pytest.raises(ImageError, match="image too large"):
        load_image(tmp_path / "a.png", 64 * 64 - 1, MAX_BYTES)


def test_exif_capture_date(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2024:05:17 10:11:12"
    Image.new("RGB", (32, 32)).save(tmp_path / "d.jpg", exif=exif)
    taken = load_image(tmp_path / "d.jpg", MAX_PIXELS, MAX_BYTES).taken_at
    assert taken is not None and (taken.year, taken.month, taken.second) == (2024, 5, 12)
