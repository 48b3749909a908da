"""The walk: the candidate images and videos under the submitted paths, in a stable order.

Images are recognised by content (magic bytes) or by an image extension, so a text file
named `.jpg` is still registered and later gets a clear "not an image" reason. Symlinked
folders are followed once (no loops); unreadable folders are reported, not fatal; broken
symbolic links are counted. Each file is stat'ed once while walking: one larger than the
size limit is recorded as too large without being read. Hashing them is
`producer.scan.hash`.
"""

from __future__ import annotations

import os
import stat as stat_mode
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache
from pathlib import Path

from db.records import Candidate

IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .png .gif .bmp .tif .tiff .webp .ppm .pgm .pbm .heic .heif .jp2 .ico".split()
)
MAGIC = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",  # TIFF little-endian
    b"MM\x00*",  # TIFF big-endian
    b"\x00\x00\x00\x0cjP  ",  # JPEG 2000
)


@dataclass
class ScanProblems:
    """What the scan could not read (reported to the user, not fatal)."""

    unreadable_dirs: list[str]
    missing: list[str]
    broken_links: int = 0
    broken_link_examples: list[str] = field(default_factory=list)

    def broken_link(self, path: str) -> None:
        self.broken_links += 1
        if len(self.broken_link_examples) < 20:
            self.broken_link_examples.append(path)


def sniff_image(head: bytes) -> bool:
    """True when the first bytes of a file are a known image signature."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"avif"):
        return True
    return any(head.startswith(m) for m in MAGIC) or head[:2] in (b"P4", b"P5", b"P6")


def is_candidate(path: str | Path) -> bool:
    """An image by extension or by content; unreadable files with an image extension count."""
    if os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as handle:
            return sniff_image(handle.read(16))
    except OSError:
        return False


def walk_files(roots: Sequence[Path], problems: ScanProblems) -> Iterator[tuple[str, str, str, os.stat_result]]:
    """(folder, name, path, stat) of every regular file under `roots`, each real folder
    visited once, folders and names in sorted order."""
    seen: set[tuple[int, int]] = set()
    for root in roots:
        if root.is_file():
            path = str(root.absolute())
            yield os.path.dirname(path), os.path.basename(path), path, os.stat(path)
            continue
        if not root.is_dir():
            if root.is_symlink():
                problems.broken_link(str(root))
            problems.missing.append(str(root))
            continue
        yield from _walk_dir(root, seen, problems)


def _walk_dir(
    root: Path, seen: set[tuple[int, int]], problems: ScanProblems
) -> Iterator[tuple[str, str, str, os.stat_result]]:
    def onerror(err: OSError) -> None:
        problems.unreadable_dirs.append(f"{err.filename}: {err.strerror}")

    stat, regular, sep = os.stat, stat_mode.S_ISREG, os.sep
    for dirpath, dirnames, filenames in os.walk(root.absolute(), followlinks=True, onerror=onerror):
        folder = stat(dirpath)
        if (folder.st_dev, folder.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((folder.st_dev, folder.st_ino))
        dirnames.sort()
        prefix = dirpath if dirpath.endswith(sep) else dirpath + sep
        for name in sorted(filenames):
            path = prefix + name
            try:
                info = stat(path)
            except FileNotFoundError:
                if os.path.islink(path):
                    problems.broken_link(path)
                continue
            except OSError:
                continue
            if regular(info.st_mode):
                yield dirpath, name, path, info


@cache
def video_rules() -> tuple[frozenset[str], Callable[[bytes], bool]]:
    """Video extensions and the video signature test (imported on first use)."""
    from emotion_batch.video import VIDEO_EXTENSIONS, sniff_video

    return frozenset(VIDEO_EXTENSIONS), sniff_video


def classify(path: str) -> str | None:
    """ "image" or "video" by extension, else by the first bytes; None for anything else."""
    video_extensions, sniff_video = video_rules()
    suffix = os.path.splitext(path)[1].lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in video_extensions:
        return "video"
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return None
    return "image" if sniff_image(head) else "video" if sniff_video(head) else None


def _kind_by_name(name: str) -> str | None:
    """ "image" or "video" by extension alone; None for anything else."""
    suffix = os.path.splitext(name)[1].lower()
    return "image" if suffix in IMAGE_EXTENSIONS else "video" if suffix in video_rules()[0] else None


OUTSIDE_ROOTS = "path outside allowed roots: a link leads out of them, not read"


class RealPaths:
    """Whether files found by the walk really lie under `roots` (links followed): each
    folder's real path is resolved once, and a file's own only when it is a link."""

    def __init__(self, roots: Sequence[Path]) -> None:
        self.roots = [os.path.join(os.path.realpath(r), "") for r in roots]
        self._folder: tuple[str, bool] = ("", True)

    def _inside(self, real: str) -> bool:
        return any(os.path.join(real, "").startswith(root) for root in self.roots)

    def allowed(self, folder: str, path: str) -> bool:
        """True when `path` (in `folder`) resolves to a file under the roots."""
        if self._folder[0] != folder:
            self._folder = (folder, self._inside(os.path.realpath(folder)))
        if not self._folder[1]:
            return False
        return not os.path.islink(path) or self._inside(os.path.realpath(path))


def candidates(
    roots: Sequence[Path], problems: ScanProblems, max_bytes: int | None = None, allowed: Sequence[Path] = ()
) -> Iterator[Candidate]:
    """The candidate images and videos under `roots` in walk order (each file stat'ed
    once, opened only when its extension says nothing); an image over `max_bytes` is
    an error, never read, and so is a file whose real path (a link followed) leaves the
    `allowed` roots (empty: anywhere)."""
    utc, from_timestamp, images = timezone.utc, datetime.fromtimestamp, IMAGE_EXTENSIONS
    new = tuple.__new__  # a named tuple made without its Python-level __new__: a million per million files
    real = RealPaths(allowed) if allowed else None
    for folder, name, path, info in walk_files([Path(r) for r in roots], problems):
        dot = name.rfind(".")
        outside = real is not None and not real.allowed(folder, path)
        if dot > 0 and name[dot:].lower() in images:
            kind: str | None = "image"
        else:  # a file out of bounds is not even opened to sniff its kind
            kind = _kind_by_name(name) if outside else classify(path)
        if kind is None:
            continue
        error = None
        if outside:
            error = OUTSIDE_ROOTS
        elif kind == "image" and max_bytes is not None and info.st_size > max_bytes:
            error = f"image too large: {info.st_size} bytes > {max_bytes} (MAX_FILE_BYTES), not read"
        mtime = from_timestamp(info.st_mtime, utc)
        yield new(Candidate, (path, folder, info.st_size, mtime, error, kind, info.st_mtime_ns))
