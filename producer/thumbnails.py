"""Face thumbnails for the HTML report: the clearest faces per emotion, cropped from the
original images and encoded as `data:` URIs so the page needs no other file."""

from __future__ import annotations

import base64
import io
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from db.faces import FaceRow
from producer.annotate import crop_face, upright


@dataclass(frozen=True)
class Thumbnail:
    """One embedded face picture and what it shows."""

    data_uri: str
    caption: str


def data_uri(image: Image.Image, fmt: str = "JPEG") -> str:
    """`image` as a base64 `data:` URI."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, fmt, quality=85)
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def png_uri(png: bytes) -> str:
    """PNG bytes as a base64 `data:` URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def face_thumbnails(
    faces: list[FaceRow], max_pixels: int, max_bytes: int, roots: Sequence[Path] = ()
) -> dict[str, list[Thumbnail]]:
    """Thumbnails grouped by dominant emotion; each image is decoded once (none whose real
    path leaves `roots`, see `upright`)."""
    by_path: dict[str, list[FaceRow]] = defaultdict(list)
    for face in faces:
        by_path[face.path].append(face)
    crops: dict[tuple[str, int, int], Thumbnail] = {}
    for path, rows in by_path.items():
        image = upright(path, max_pixels, max_bytes, roots)
        if image is None:
            continue
        for face in rows:
            caption = f"{face.dominant} {face.percent:.0f}% · {Path(path).name}"
            crops[(path, face.x, face.y)] = Thumbnail(data_uri(crop_face(image, face)), caption)
    grouped: dict[str, list[Thumbnail]] = defaultdict(list)
    for face in faces:  # keep the query's order (most certain first)
        if (face.path, face.x, face.y) in crops:
            grouped[face.dominant].append(crops[(face.path, face.x, face.y)])
    return dict(grouped)
