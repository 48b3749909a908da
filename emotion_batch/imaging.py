"""Decode one image file into an RGB uint8 array, or raise a clear `ImageError`.

The file is read once: its sha256 is taken from the very bytes that are decoded, so a
result is always recorded under the hash of what was analysed. Only an allow-list of
raster formats is decoded (never EPS, PDF, PSD and the like, whatever the file is named).
EXIF orientation is applied, every mode (CMYK, 16-bit, float, palette, alpha, grey)
becomes 8-bit RGB, animated images give their first frame, and the decompression-bomb
guard refuses images above `max_pixels` before their pixels are decoded.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from emotion_batch.errors import (
    CorruptImageError,
    EmptyFileError,
    FileMissingError,
    ImageTooLargeError,
    NotAnImageError,
    UnreadableFileError,
)

EXIF_DATETIME_ORIGINAL = 0x9003
EXIF_IFD = 0x8769
EXIF_ORIENTATION = 0x0112

# Raster formats we decode (Pillow's names). Anything else (EPS, which runs Ghostscript,
# PDF, PSD, WMF, ...) is refused as "not an image", whatever the file's extension.
# MPO (multi-picture JPEG from cameras) is opened by the JPEG plugin. HEIF counts only
# when a plugin such as pillow-heif has registered it.
ALLOWED_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "TIFF", "BMP", "DIB", "GIF", "AVIF", "JPEG2000", "PPM", "ICO", "HEIF")


@dataclass(frozen=True)
class LoadedImage:
    """A decoded image: RGB pixels plus what the database records about it.

    `width`/`height` are the upright original's; `rgb` may be smaller by `scale`
    (JPEGs are decoded at a reduced size when a `max_side` is asked for).
    """

    rgb: np.ndarray
    width: int
    height: int
    format: str
    taken_at: datetime | None
    scale: float = 1.0
    sha256: str = ""


def read_file(path: Path, max_bytes: int) -> bytes:
    """The whole file in one read, refused before reading when it is not a regular file,
    empty or too large (opened non-blocking, so a FIFO or device cannot hang a worker)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError as exc:
        raise FileMissingError(str(path)) from exc
    except PermissionError as exc:
        raise UnreadableFileError("permission denied") from exc
    except OSError as exc:
        raise UnreadableFileError(exc.strerror or str(exc)) from exc
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFileError("not a regular file")
        if info.st_size == 0:
            raise EmptyFileError("0 bytes")
        if info.st_size > max_bytes:
            raise ImageTooLargeError(f"{info.st_size} bytes > {max_bytes}")
        try:
            data = handle.read(max_bytes + 1)
        except OSError as exc:
            raise UnreadableFileError(exc.strerror or str(exc)) from exc
    if not data:
        raise EmptyFileError("0 bytes")
    if len(data) > max_bytes:  # grew after the size check
        raise ImageTooLargeError(f"more than {max_bytes} bytes")
    return data


def _allowed_formats() -> tuple[str, ...]:
    Image.init()
    return tuple(name for name in ALLOWED_FORMATS if name in Image.OPEN)


def _open(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=_allowed_formats())
    except UnidentifiedImageError as exc:
        raise NotAnImageError("content is not a known image format") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(str(exc)) from exc
    except OSError as exc:  # a plugin that cannot parse the header
        raise CorruptImageError(str(exc) or type(exc).__name__) from exc


def _check_size(image: Image.Image, max_pixels: int) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLargeError(f"{width}x{height} > {max_pixels} pixels")
    if width < 2 or height < 2:
        raise CorruptImageError(f"{width}x{height} is too small to hold a face")


def _taken_at(image: Image.Image) -> datetime | None:
    try:
        raw = image.getexif().get_ifd(EXIF_IFD).get(EXIF_DATETIME_ORIGINAL)
        return datetime.strptime(str(raw).strip("\x00 "), "%Y:%m:%d %H:%M:%S") if raw else None
    except (ValueError, TypeError, OSError, KeyError):
        return None


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB (16-bit grey is scaled, not clipped)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or arr.max() > 255 else 255.0
        image = Image.fromarray(np.clip(arr / peak * 255.0, 0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        arr = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        peak = arr.max(initial=0.0)
        if 0.0 < peak <= 1.0:  # float images hold 0-1 by convention: scale, do not clip to black
            arr = arr * 255.0
        elif peak > 255.0:
            arr = arr / peak * 255.0
        image = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return image if image.mode == "RGB" else image.convert("RGB")  # no copy when nothing changes


def _verify_checksums(data: bytes) -> None:
    """PNG chunk CRCs are not checked by decoding; PIL's verify() checks them."""
    try:
        with Image.open(io.BytesIO(data), formats=("PNG",)) as image:
            image.verify()
    except (OSError, SyntaxError, ValueError) as exc:
        raise CorruptImageError(f"checksum error: {exc}") from exc


def _draft(image: Image.Image, max_side: int | None) -> float:
    """Let the JPEG decoder scale by 1/2, 1/4 or 1/8 while staying >= `max_side`."""
    width, height = image.size
    if not max_side or image.format != "JPEG" or max(width, height) <= max_side:
        return 1.0
    ratio = max_side / max(width, height)
    image.draft("RGB", (max(1, int(width * ratio)), max(1, int(height * ratio))))
    return image.size[0] / width


def _upright_size(image: Image.Image) -> tuple[int, int]:
    """The file's true width and height once EXIF orientation is applied (before any draft)."""
    width, height = image.size
    try:
        orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    except (ValueError, TypeError, OSError, SyntaxError):
        orientation = 1
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def load_image(path: str | Path, max_pixels: int, max_bytes: int, max_side: int | None = None) -> LoadedImage:
    """Read `path` once and decode it into an upright 8-bit RGB image, or raise an `ImageError`.

    The returned `sha256` is the hash of the bytes decoded. With `max_side`, a large JPEG
    is decoded at a reduced scale (DCT scaling, much faster) whose long side is still at
    least `max_side`; `width`/`height` stay the file's true size.
    """
    return decode_image(read_file(Path(path), max_bytes), max_pixels, max_side)


def decode_image(data: bytes, max_pixels: int, max_side: int | None = None, sha256: str | None = None) -> LoadedImage:
    """Decode a file's bytes (see `load_image`); `sha256` when the caller hashed them already."""
    sha256 = sha256 or hashlib.sha256(data).hexdigest()
    with _open(data) as image:
        fmt = image.format or "unknown"
        if fmt not in ALLOWED_FORMATS:
            raise NotAnImageError(f"{fmt} is not a supported image format")
        _check_size(image, max_pixels)
        width, height = _upright_size(image)
        scale = _draft(image, max_side)
        if fmt == "PNG":
            _verify_checksums(data)
        taken_at = _taken_at(image)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image.seek(0)
                # in place: the one copy of the pixels is the array made below
                ImageOps.exif_transpose(image, in_place=True)
                rgb = np.asarray(_to_rgb(image), dtype=np.uint8)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise ImageTooLargeError(str(exc)) from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise CorruptImageError(str(exc) or type(exc).__name__) from exc
    return LoadedImage(rgb, width, height, fmt, taken_at, scale, sha256)
