"""Video clips made from real face photos with `cv2.VideoWriter`, for tests and the
video benchmark: faces moving across the picture and changing every few seconds.

Each frame also carries its own index in a strip of black/white cells along the bottom
edge (`frame_index_of` reads it back), so a test can check which native frame a sample
really came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

CODECS = {".mp4": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "XVID", ".webm": "VP80"}
INDEX_BITS = 16
STRIP = 8  # pixel height of the index strip


def load_faces(photos: Sequence[Path], height: int) -> list[np.ndarray]:
    """The photos as upright BGR arrays scaled to `height` rows."""
    faces = []
    for path in photos:
        image = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
        scale = height / image.height
        image = image.resize((max(1, round(image.width * scale)), height))
        faces.append(cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR))
    return faces


def _stamp(frame: np.ndarray, index: int) -> None:
    cell = frame.shape[1] // INDEX_BITS
    for bit in range(INDEX_BITS):
        frame[-STRIP:, bit * cell : (bit + 1) * cell] = 255 if (index >> bit) & 1 else 0


def frame_index_of(rgb: np.ndarray) -> int:
    """The native frame index stamped on a frame by `write_clip`."""
    cell = rgb.shape[1] // INDEX_BITS
    row = rgb[-STRIP // 2, :, :].mean(axis=1) if rgb.ndim == 3 else rgb[-STRIP // 2]
    return sum(1 << bit for bit in range(INDEX_BITS) if row[bit * cell + cell // 2] > 127)


def write_clip(
    path: Path,
    photos: Sequence[Path],
    seconds: float,
    fps: float = 25.0,
    size: tuple[int, int] = (640, 360),
    change_every_s: float = 4.0,
) -> Path:
    """Write a clip of `seconds` at `fps`: one photo at a time sliding left and right,
    the next photo every `change_every_s` seconds. The codec follows the suffix."""
    width, height = size
    faces = load_faces(photos, int(height * 0.9))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*CODECS[path.suffix.lower()]), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"cv2.VideoWriter cannot write {path}")
    canvas = np.full((height, width, 3), 40, np.uint8)
    try:
        for index in range(round(seconds * fps)):
            t = index / fps
            face = faces[int(t // change_every_s) % len(faces)]
            frame = canvas.copy()
            fw = min(face.shape[1], width)
            room = width - fw
            x = int(room * (0.5 + 0.5 * np.sin(2 * np.pi * t / 6.0)))
            y = (height - STRIP - face.shape[0]) // 2
            frame[max(0, y) : max(0, y) + face.shape[0], x : x + fw] = face[: height - max(0, y), :fw]
            _stamp(frame, index)
            writer.write(frame)
    finally:
        writer.release()
    return path


def cut(path: Path, out: Path, keep: float) -> Path:
    """A copy of `path` holding only the first `keep` fraction of its bytes (or `keep` bytes if > 1)."""
    data = path.read_bytes()
    out.write_bytes(data[: int(keep if keep > 1 else len(data) * keep)])
    return out


def claim_longer(avi: Path, out: Path, frames: int) -> Path:
    """A copy of an AVI whose headers claim `frames` frames (the data holds far fewer)."""
    data = bytearray(avi.read_bytes())
    main = data.find(b"avih")
    data[main + 24 : main + 28] = frames.to_bytes(4, "little")  # dwTotalFrames
    stream = data.find(b"strh")
    data[stream + 40 : stream + 44] = frames.to_bytes(4, "little")  # dwLength
    out.write_bytes(bytes(data))
    return out
