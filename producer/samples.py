"""Sample photos for the demo, made from images scikit-image ships (no download).

A few faces (NASA's astronaut portrait, flipped, scaled, EXIF-rotated), photos with no
face and one broken file, so the demo report shows every outcome.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image


def _astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


def _no_face() -> dict[str, Image.Image]:
    from skimage import data

    return {"coffee.jpg": Image.fromarray(data.coffee()), "cat.png": Image.fromarray(data.chelsea())}


def write_samples(folder: Path) -> list[Path]:
    """Write the sample set into `folder` (created) and return the files written."""
    faces, others = folder / "people", folder / "other"
    faces.mkdir(parents=True, exist_ok=True)
    others.mkdir(parents=True, exist_ok=True)
    astro = _astronaut()
    images = {
        faces / "astronaut.jpg": astro,
        faces / "astronaut-mirrored.jpg": astro.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        faces / "astronaut-large.png": astro.resize((1024, 1024), Image.Resampling.LANCZOS),
        faces / "astronaut-grey.jpg": astro.convert("L"),
    }
    images.update({others / name: img for name, img in _no_face().items()})
    written = []
    for path, image in images.items():
        image.save(path, quality=92) if path.suffix == ".jpg" else image.save(path)
        written.append(path)
    rotated = faces / "astronaut-exif-rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways; viewers (and we) rotate it upright
    astro.transpose(Image.Transpose.ROTATE_90).save(rotated, exif=exif, quality=92)
    broken = others / "broken.jpg"
    broken.write_bytes((faces / "astronaut.jpg").read_bytes()[:2000])
    notes = others / "notes.jpg"
    notes.write_text("this is text, not a photo\n")
    return [*written, rotated, broken, notes]
