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


def test_hash_is_of_the_bytes_decoded(tmp_path: Path, face_photo: Path) -> None:
    import hashlib

    data = face_photo.read_bytes()
    assert load_image(face_photo, MAX_PIXELS, MAX_BYTES).sha256 == hashlib.sha256(data).hexdigest()


def test_eps_named_jpg_never_reaches_the_eps_plugin(tmp_path: Path, monkeypatch) -> None:
    from PIL import EpsImagePlugin

    Image.new("RGB", (64, 64), (200, 10, 10)).save(tmp_path / "real.eps", "EPS")
    (tmp_path / "evil.jpg").write_bytes((tmp_path / "real.eps").read_bytes())
    opened = []
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", lambda self: opened.append(self))
    with pytest.raises(ImageError, match="not an image"):
        load_image(tmp_path / "evil.jpg", MAX_PIXELS, MAX_BYTES)
    assert opened == []  # Ghostscript's plugin was never even asked to parse it


def test_float_tiff_in_zero_one_is_scaled_not_clipped(tmp_path: Path, face_photo: Path) -> None:
    grey = np.asarray(Image.open(face_photo).convert("L"), dtype=np.float32) / 255.0
    Image.fromarray(grey, "F").save(tmp_path / "float.tif")
    rgb = load_image(tmp_path / "float.tif", MAX_PIXELS, MAX_BYTES).rgb
    assert abs(rgb[..., 0].astype(float).mean() - grey.mean() * 255) < 2  # not black
    assert rgb.std() > 10


@pytest.mark.parametrize("size, orientation", [((4001, 2999), 1), ((3850, 2575), 1), ((4001, 2999), 6)])
def test_reduced_scale_jpeg_records_the_files_true_size(tmp_path: Path, size, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.new("RGB", size, (90, 120, 150)).save(tmp_path / "big.jpg", exif=exif, quality=60)
    image = load_image(tmp_path / "big.jpg", MAX_PIXELS, MAX_BYTES, max_side=500)
    assert image.scale < 1  # decoded at reduced scale...
    upright = size[::-1] if orientation == 6 else size
    assert (image.width, image.height) == upright  # ...but the file's true size is stored


def test_fifo_or_device_is_refused_without_blocking(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "fifo.jpg")
    with pytest.raises(ImageError, match="not a regular file"):
        load_image(tmp_path / "fifo.jpg", MAX_PIXELS, MAX_BYTES)
    with pytest.raises(ImageError, match="not a regular file"):
        load_image("/dev/zero", MAX_PIXELS, MAX_BYTES)
