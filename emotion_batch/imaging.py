"""Decode one image file into an RGB uint8 array, or raise a clear `ImageError`.

EXIF orientation is applied, every mode (CMYK, 16-bit, palette, alpha, grey) becomes
8-bit RGB, animated images give their first frame, and the decompression-bomb guard
refuses images above `max_pixels` before their pixels are decoded.
"""

from __future__ import annotations

import os
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


def _open(path: Path, max_bytes: int) -> Image.Image:
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise FileMissingError(str(path)) from exc
    except OSError as exc:
        raise UnreadableFileError(exc.strerror or str(exc)) from exc
    if size == 0:
        raise EmptyFileError("0 bytes")
    if size > max_bytes:
        raise ImageTooLargeError(f"{size} bytes > {max_bytes}")
    if not os.access(path, os.R_OK):
        raise UnreadableFileError("permission denied")
    try:
        return Image.open(path)
    except UnidentifiedImageError as exc:
        raise NotAnImageError("content is not a known image format") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(str(exc)) from exc
    except PermissionError as exc:
        raise UnreadableFileError("permission denied") from exc
    except OSError as exc:
        raise UnreadableFileError(str(exc)) from exc


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
        image = Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def _verify_checksums(path: Path) -> None:
    """PNG chunk CRCs are not checked by decoding; PIL's verify() checks them."""
    try:
        with Image.open(path) as image:
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


def load_image(
    path: str | Path, max_pixels: int, max_bytes: int, max_side: int | None = None
) -> LoadedImage:
    """Decode `path` into an upright 8-bit RGB image, or raise an `ImageError`.

    With `max_side`, a large JPEG is decoded at a reduced scale (DCT scaling, much
    faster) whose long side is still at least `max_side`.
    """
    path = Path(path)
    with _open(path, max_bytes) as image:
        fmt = image.format or "unknown"
        _check_size(image, max_pixels)
        scale = _draft(image, max_side)
        if fmt == "PNG":
            _verify_checksums(path)
        taken_at = _taken_at(image)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image.seek(0)
                upright = ImageOps.exif_transpose(image)
                rgb = np.asarray(_to_rgb(upright), dtype=np.uint8)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise ImageTooLargeError(str(exc)) from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise CorruptImageError(str(exc) or type(exc).__name__) from exc
    height, width = rgb.shape[:2]
    return LoadedImage(rgb, round(width / scale), round(height / scale), fmt, taken_at, scale)
