"""Annotated copies of a job's images: a box around each face with its dominant emotion
and percentage, drawn with Pillow on the upright (EXIF-rotated) image the boxes refer to.
Face crops for thumbnails come from the same upright image."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from db.faces import FaceRow
from emotion_batch.errors import ImageError
from emotion_batch.imaging import load_image
from emotion_batch.pipeline import check_allowed
from producer.charts import COLOURS

JPEG_QUALITY = 90


def upright(path: str, max_pixels: int, max_bytes: int, roots: Sequence[Path] = ()) -> Image.Image | None:
    """The image as the worker saw it (EXIF orientation applied), or None if unreadable
    now, or if its real path (links followed) leaves `roots` (empty: anywhere)."""
    try:
        return Image.fromarray(load_image(check_allowed(path, roots), max_pixels, max_bytes).rgb)
    except ImageError:
        return None


def draw_faces(image: Image.Image, faces: Iterable[FaceRow]) -> Image.Image:
    """A copy of `image` with each face boxed and labelled "<emotion> <percent>%"."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    line = max(2, round(max(out.size) / 400))
    font = ImageFont.load_default(size=max(12, round(max(out.size) / 45)))
    for face in faces:
        colour = COLOURS.get(face.dominant, "#ffff00")
        draw.rectangle((face.x, face.y, face.x + face.w, face.y + face.h), outline=colour, width=line)
        label = f"{face.dominant} {face.percent:.0f}%"
        left, top, right, bottom = draw.textbbox((face.x, face.y), label, font=font)
        y = face.y - (bottom - top) - 2 * line if face.y > bottom - top + 2 * line else face.y + face.h
        draw.rectangle((face.x, y, face.x + right - left + 2 * line, y + bottom - top + 2 * line), fill=colour)
        draw.text((face.x + line, y + line - (top - face.y)), label, fill="white", font=font)
    return out


def crop_face(image: Image.Image, face: FaceRow, size: int = 112, margin: float = 0.15) -> Image.Image:
    """A square thumbnail of one face with a little margin around its box."""
    pad = round(max(face.w, face.h) * margin)
    box = (
        max(0, face.x - pad),
        max(0, face.y - pad),
        min(image.width, face.x + face.w + pad),
        min(image.height, face.y + face.h + pad),
    )
    crop = image.crop(box)
    crop.thumbnail((size, size))
    return crop


def output_path(path: str, root: str, out_dir: Path) -> Path:
    """Where the annotated copy of `path` goes: its place under `root`, as a JPEG."""
    relative = Path(os.path.relpath(path, root))
    suffix = "" if relative.suffix.lower() in (".jpg", ".jpeg") else ".jpg"
    return out_dir / relative.parent / (relative.name + suffix)


def annotate_images(
    images: Iterable[tuple[str, list[FaceRow]]],
    out_dir: Path,
    max_pixels: int,
    max_bytes: int,
    roots: Sequence[Path] = (),
) -> tuple[list[Path], list[str]]:
    """Write annotated copies under `out_dir`, mirroring the folders; return (written,
    unreadable: gone, undecodable, or whose real path now leaves `roots`)."""
    items = list(images)
    root = os.path.commonpath([os.path.dirname(p) for p, _ in items]) if items else "/"
    written, unreadable = [], []
    for path, faces in items:
        image = upright(path, max_pixels, max_bytes, roots)
        if image is None:
            unreadable.append(path)
            continue
        target = output_path(path, root, out_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        draw_faces(image, faces).save(target, "JPEG", quality=JPEG_QUALITY)
        written.append(target)
    return written, unreadable
