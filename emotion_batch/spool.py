"""The spool of a live source: sampled frames as files, never pixels on Redis.

Layout: `<root>/job<J>-<start>/seg<NNNNNN>/<k>_<epoch microseconds>.jpg`, one folder per
segment so a segment task reads exactly its frames, and each file's name carries its
sample number and wall-clock capture time (nothing else needs to travel). A `KEEP` file
in the spool folder (`producer live --keep-frames`) tells workers to leave the frames
once stored; without it each segment's folder is removed after its frames are stored.
Workers on other machines read it where they mount the same folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

KEEP_MARKER = "KEEP"
JPEG_QUALITY = 92  # sampled frames are analysed later: little loss, a tenth of the bytes


@dataclass(frozen=True)
class SpoolFrame:
    """One spooled frame: its sample number, capture moment and file."""

    k: int
    captured_at: datetime
    path: Path


def segment_dir(spool: Path, segment_no: int) -> Path:
    """The folder holding one segment's frames."""
    return spool / f"seg{segment_no:06d}"


def write_frame(spool: Path, segment_no: int, k: int, captured: float, bgr: np.ndarray) -> Path:
    """Store one sampled frame (OpenCV's BGR pixels) captured at epoch second `captured`.

    Written under a temporary name and renamed, so a reader never sees half a file.
    """
    folder = segment_dir(spool, segment_no)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{k:08d}_{round(captured * 1e6)}.jpg"
    partial = folder / f".{final.name}.partial"
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError(f"frame {k} could not be encoded as JPEG")
    partial.write_bytes(data.tobytes())
    partial.replace(final)
    return final


def segment_frames(spool: Path, segment_no: int) -> list[SpoolFrame]:
    """One segment's frames in sample order (none when its folder is gone)."""
    folder = segment_dir(spool, segment_no)
    if not folder.is_dir():
        return []
    frames = [_parse(path) for path in folder.glob("*.jpg")]
    return sorted((f for f in frames if f is not None), key=lambda f: f.k)


def _parse(path: Path) -> SpoolFrame | None:
    k, _, micros = path.stem.partition("_")
    if not (k.isdigit() and micros.isdigit()):
        return None
    return SpoolFrame(int(k), datetime.fromtimestamp(int(micros) / 1e6, timezone.utc), path)


def read_frames(frames: list[SpoolFrame]) -> Iterator[tuple[SpoolFrame, np.ndarray | None]]:
    """Each frame with its RGB pixels, or None when its file cannot be decoded."""
    for frame in frames:
        bgr = cv2.imread(str(frame.path), cv2.IMREAD_COLOR)
        yield frame, None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def keep(spool: Path) -> None:
    """Mark the spool's frames to be kept after they are stored."""
    spool.mkdir(parents=True, exist_ok=True)
    (spool / KEEP_MARKER).touch()


def release_segment(spool: Path, segment_no: int) -> bool:
    """Remove a stored segment's frames unless the spool is kept; the spool folder goes
    with its last segment. True when something was removed."""
    if (spool / KEEP_MARKER).exists():
        return False
    shutil.rmtree(segment_dir(spool, segment_no), ignore_errors=True)
    try:
        spool.rmdir()  # only when empty: other segments may still be waiting
    except OSError:
        pass
    return True
