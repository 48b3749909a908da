"""Many small, distinct JPEGs in nested folders, written fast (for `bench.scale`).

A handful of real 64x64 JPEGs are encoded once; every file is one of them with its index
written into a JPEG comment (COM) segment right after the start-of-image marker, so each
file is a valid JPEG with its own content hash, at a few microseconds per file. Folders
hold `per_folder` files each (`d0000/f000/`, ...), and modification times spread over
three years so that reports by date have something to bucket.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

BASES = 16
SPAN_SECONDS = 3 * 365 * 86400
START = 1_640_995_200  # 2022-01-01 UTC


def _bases() -> list[bytes]:
    rng = np.random.default_rng(12)
    out = []
    for _ in range(BASES):
        pixels = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=75)
        out.append(buffer.getvalue())
    return out


def file_path(root: Path, index: int, per_folder: int) -> Path:
    folder = index // per_folder
    return root / f"d{folder // 100:04d}" / f"f{folder % 100:03d}" / f"{index:08d}.jpg"


def generate(root: Path, count: int, per_folder: int = 100) -> Path:
    """Write `count` distinct JPEGs under `root` (kept when already complete)."""
    marker = root / f".complete-{count}-{per_folder}"
    if marker.exists():
        return root
    bases = _bases()
    for index in range(count):
        path = file_path(root, index, per_folder)
        if index % per_folder == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        comment = f"bench {index}".encode()
        base = bases[index % BASES]
        data = base[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + base[2:]
        path.write_bytes(data)
        when = START + (index * 7919) % SPAN_SECONDS
        os.utime(path, (when, when))
    marker.touch()
    return root


if __name__ == "__main__":
    import sys

    generate(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 100)
