"""Find the images under the submitted paths and hash them.

Images are recognised by content (magic bytes) or by an image extension, so a text file
named `.jpg` is still registered and later gets a clear "not an image" reason. Symlinked
folders are followed once (no loops); unreadable folders are reported, not fatal.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from emotion_batch.hashing import sha256_file

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


@dataclass(frozen=True)
class ScannedFile:
    """One candidate image: where it is and what its content hashes to."""

    path: str
    folder: str
    sha256: str
    size: int
    mtime: datetime | None
    error: str | None = None


@dataclass
class ScanProblems:
    """What the scan could not read (reported to the user, not fatal)."""

    unreadable_dirs: list[str]
    missing: list[str]


def sniff_image(head: bytes) -> bool:
    """True when the first bytes of a file are a known image signature."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"avif"):
        return True
    return any(head.startswith(m) for m in MAGIC) or head[:2] in (b"P4", b"P5", b"P6")


def is_candidate(path: Path) -> bool:
    """An image by extension or by content; unreadable files with an image extension count."""
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as handle:
            return sniff_image(handle.read(16))
    except OSError:
        return False


def walk_files(roots: Sequence[Path], problems: ScanProblems) -> Iterator[Path]:
    """Every regular file under `roots`, each real folder visited once."""
    seen: set[tuple[int, int]] = set()
    for root in roots:
        if root.is_file():
            yield root.absolute()
            continue
        if not root.is_dir():
            problems.missing.append(str(root))
            continue
        yield from _walk_dir(root, seen, problems)


def _walk_dir(root: Path, seen: set[tuple[int, int]], problems: ScanProblems) -> Iterator[Path]:
    def onerror(err: OSError) -> None:
        problems.unreadable_dirs.append(f"{err.filename}: {err.strerror}")

    for dirpath, dirnames, filenames in os.walk(root.absolute(), followlinks=True, onerror=onerror):
        stat = os.stat(dirpath)
        if (stat.st_dev, stat.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((stat.st_dev, stat.st_ino))
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file():
                yield path


def scan_file(path: Path) -> ScannedFile:
    """Hash one file; an unreadable file gets a path-derived key and its error."""
    folder = str(path.parent)
    try:
        stat = path.stat()
        mtime = datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc)
        return ScannedFile(str(path), folder, sha256_file(path), stat.st_size, mtime)
    except OSError as exc:
        key = hashlib.sha256(b"unreadable\0" + str(path).encode("utf-8", "surrogateescape"))
        reason = f"unreadable file: {exc.strerror or exc}"
        return ScannedFile(str(path), folder, key.hexdigest(), 0, None, reason)


def scan(
    roots: Sequence[Path], on_file: Callable[[ScannedFile], None] | None = None, threads: int = 4
) -> tuple[list[ScannedFile], ScanProblems]:
    """Scan `roots` for candidate images and hash them (in threads), in a stable order."""
    problems = ScanProblems([], [])
    candidates = (p for p in walk_files([Path(r) for r in roots], problems) if is_candidate(p))
    files = []
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="hash") as pool:
        for scanned in pool.map(scan_file, candidates):
            files.append(scanned)
            if on_file:
                on_file(scanned)
    return files, problems
