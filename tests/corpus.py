"""A bad-input corpus, generated on the fly (never committed): each file with the
outcome it must get."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

# name -> expected (status, reason substring or None)
EXPECTED: dict[str, tuple[str, str | None]] = {
    "zero-byte.jpg": ("failed", "empty file"),
    "text-named.jpg": ("failed", "not an image"),
    "truncated.jpg": ("failed", "corrupt or truncated"),
    "broken-crc.png": ("failed", "corrupt or truncated"),
    "bomb.png": ("failed", "image too large"),
    "one-pixel.png": ("failed", "too small"),
    "plain-grey.png": ("no_face", None),
}


def _bomb_png(path: Path, side: int = 30000) -> None:
    """A tiny PNG header that claims side x side pixels (decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (side + 1) * 16)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def _broken_crc_png(path: Path, source: Image.Image) -> None:
    source.save(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip bits inside the image data: CRC and zlib both break
    path.write_bytes(bytes(data))


def write_bad_corpus(folder: Path, face_photo: Path) -> dict[str, tuple[str, str | None]]:
    """Write the corpus into `folder`; return name -> expected (status, reason)."""
    folder.mkdir(parents=True, exist_ok=True)
    face = Image.open(face_photo).convert("RGB")
    (folder / "zero-byte.jpg").write_bytes(b"")
    (folder / "text-named.jpg").write_text("hello, I am not a JPEG\n")
    data = face_photo.read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    _broken_crc_png(folder / "broken-crc.png", face.resize((200, 200)))
    _bomb_png(folder / "bomb.png")
    Image.new("RGB", (1, 1), (128, 128, 128)).save(folder / "one-pixel.png")
    Image.fromarray(np.full((300, 400), 128, np.uint8)).save(folder / "plain-grey.png")
    return dict(EXPECTED)


def write_odd_formats(folder: Path, face_photo: Path) -> list[Path]:
    """Valid but unusual encodings of a face photo: each must be analysed with a face."""
    folder.mkdir(parents=True, exist_ok=True)
    face = Image.open(face_photo).convert("RGB")
    face.thumbnail((800, 800))
    made = {
        "cmyk.jpg": lambda p: face.convert("CMYK").save(p, "JPEG"),
        "sixteen-bit.png": lambda p: Image.fromarray(np.asarray(face.convert("L"), dtype=np.uint16) * 257).save(p),
        "alpha.png": lambda p: face.convert("RGBA").save(p),
        "animated.gif": lambda p: face.save(p, save_all=True, append_images=[face.rotate(10)], duration=100),
        "exif-rotated.jpg": lambda p: _exif_rotated(face, p),
        "ünïcödé naïve/face.jpg": lambda p: face.save(p),
    }
    paths = []
    for name, write in made.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
        paths.append(path)
    return paths


def write_crowd(path: Path, photos: list[Path], grid: int = 5) -> None:
    """A group photo of grid x grid people: each real photo shrunk into one tile."""
    tile = 220
    crowd = Image.new("RGB", (tile * grid, tile * grid), (200, 200, 200))
    for i in range(grid * grid):
        face = Image.open(photos[i % len(photos)]).convert("RGB")
        face.thumbnail((tile, tile))
        crowd.paste(face, ((i % grid) * tile, (i // grid) * tile))
    crowd.save(path, quality=92)


def _exif_rotated(face: Image.Image, path: Path) -> None:
    """Store the face sideways with EXIF orientation 6: only rotation makes it upright."""
    exif = Image.Exif()
    exif[0x0112] = 6
    face.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif)
