"""A benchmark job made from the given photos: the originals plus flipped and rescaled
copies (`--repeat N`), so every file's content hash differs."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageOps

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def source_photos(folder: Path) -> list[Path]:
    """The photos under `folder`, sorted."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def build_photoset(folder: Path, repeat: int, out: Path) -> list[Path]:
    """Copy `repeat` variants of each photo into `out` (variant 0 is the original file)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, source in enumerate(source_photos(folder)):
        original = ImageOps.exif_transpose(Image.open(source)).convert("RGB")
        for variant in range(repeat):
            path = out / f"{index:04d}-{variant:03d}.jpg"
            if not path.exists():
                _variant(original, variant).save(path, quality=90)
            paths.append(path)
    return paths


def _variant(image: Image.Image, variant: int) -> Image.Image:
    """Mirrored or not, 10 scales, then a crop of `variant // 20` pixels: all distinct."""
    if variant == 0:
        return image
    if variant % 2:
        image = ImageOps.mirror(image)
    scale = 1.0 - 0.04 * ((variant // 2) % 10)
    size = (max(64, int(image.width * scale)), max(64, int(image.height * scale)))
    image = image.resize(size, Image.Resampling.BILINEAR)
    shift = variant // 20
    return image.crop((shift, shift, image.width, image.height)) if shift else image
