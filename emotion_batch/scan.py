"""Find the images under the submitted paths and hash them, as a stream.

Images are recognised by content (magic bytes) or by an image extension, so a text file
named `.jpg` is still registered and later gets a clear "not an image" reason. Symlinked
folders are followed once (no loops); unreadable folders are reported, not fatal; broken
symbolic links are counted. Each file is stat'ed once while walking: one larger than the
size limit is recorded as too large without being read. Hashing runs in a bounded thread
pool while the walk goes on (`hash_stream`), results come out in walk order, and a file
whose path, size and modification time match an earlier analysed image reuses its hash
(the `known` lookup) instead of being read again.
"""

from __future__ import annotations

import hashlib
import os
import stat as stat_mode
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
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
    read: bool = True  # False: hash reused from an earlier image (same path, size, mtime)


@dataclass(frozen=True)
class Candidate:
    """A file found by the walk, stat'ed once (size and mtime), not yet read."""

    path: str
    size: int
    mtime: datetime | None
    error: str | None = None

    @property
    def folder(self) -> str:
        return os.path.dirname(self.path)


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


def walk_files(roots: Sequence[Path], problems: ScanProblems) -> Iterator[tuple[str, os.stat_result]]:
    """(path, stat) of every regular file under `roots`, each real folder visited once."""
    seen: set[tuple[int, int]] = set()
    for root in roots:
        if root.is_file():
            path = str(root.absolute())
            yield path, os.stat(path)
            continue
        if not root.is_dir():
            if root.is_symlink():
                problems.broken_link(str(root))
            problems.missing.append(str(root))
            continue
        yield from _walk_dir(root, seen, problems)


def _walk_dir(
    root: Path, seen: set[tuple[int, int]], problems: ScanProblems
) -> Iterator[tuple[str, os.stat_result]]:
    def onerror(err: OSError) -> None:
        problems.unreadable_dirs.append(f"{err.filename}: {err.strerror}")

    for dirpath, dirnames, filenames in os.walk(root.absolute(), followlinks=True, onerror=onerror):
        folder = os.stat(dirpath)
        if (folder.st_dev, folder.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((folder.st_dev, folder.st_ino))
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            try:
                info = os.stat(path)
            except FileNotFoundError:
                if os.path.islink(path):
                    problems.broken_link(path)
                continue
            except OSError:
                continue
            if stat_mode.S_ISREG(info.st_mode):
                yield path, info


def candidates(
    roots: Sequence[Path], problems: ScanProblems, max_bytes: int | None = None
) -> Iterator[Candidate]:
    """The candidate images under `roots` in walk order; over `max_bytes` is an error, unread."""
    for path, info in walk_files([Path(r) for r in roots], problems):
        if not is_candidate(path):
            continue
        mtime = datetime.fromtimestamp(info.st_mtime, tz=timezone.utc)
        error = None
        if max_bytes is not None and info.st_size > max_bytes:
            error = f"image too large: {info.st_size} bytes > {max_bytes} (MAX_FILE_BYTES), not read"
        yield Candidate(path, info.st_size, mtime, error)


def _placeholder_key(path: str) -> str:
    """A content key for a file that was not hashed: derived from its path."""
    return hashlib.sha256(b"unhashed\0" + os.fsencode(path)).hexdigest()


def hash_candidate(candidate: Candidate) -> ScannedFile:
    """Hash one file; an unreadable file gets a path-derived key and its error."""
    if candidate.error:
        return ScannedFile(candidate.path, candidate.folder, _placeholder_key(candidate.path),
                           candidate.size, candidate.mtime, candidate.error, read=False)
    try:
        digest = sha256_file(candidate.path)
    except OSError as exc:
        reason = f"unreadable file: {exc.strerror or exc}"
        return ScannedFile(candidate.path, candidate.folder, _placeholder_key(candidate.path), 0, None, reason)
    return ScannedFile(candidate.path, candidate.folder, digest, candidate.size, candidate.mtime)


def scan_file(path: Path) -> ScannedFile:
    """Stat and hash one file (an unreadable one gets its error)."""
    try:
        info = os.stat(path)
    except OSError as exc:
        return ScannedFile(str(path), str(Path(path).parent), _placeholder_key(str(path)), 0, None,
                           f"unreadable file: {exc.strerror or exc}")
    mtime = datetime.fromtimestamp(info.st_mtime, tz=timezone.utc)
    return hash_candidate(Candidate(str(path), info.st_size, mtime))


KnownHashes = Callable[[list[Candidate]], dict[str, str]]


def _done(value: ScannedFile) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


def hash_stream(
    found: Iterable[Candidate], known: KnownHashes | None = None, threads: int = 4,
    window: int = 2048, lookup_chunk: int = 500,
) -> Iterator[ScannedFile]:
    """Hash `found` in a pool of `threads` while it is still being walked, in order.

    At most `window` files are in flight, so memory stays flat whatever the number of
    files. `known(candidates)` may return {path: sha256} for files whose hash is already
    known (same path, size and mtime as an analysed image): those are not read.
    """
    pending: deque[Future] = deque()
    group: list[Candidate] = []
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="hash") as pool:

        def submit(batch: list[Candidate]) -> None:
            reuse = known([c for c in batch if not c.error]) if known else {}
            for c in batch:
                sha = reuse.get(c.path)
                if sha is not None:
                    pending.append(_done(ScannedFile(c.path, c.folder, sha, c.size, c.mtime, read=False)))
                else:
                    pending.append(pool.submit(hash_candidate, c))

        for candidate in found:
            group.append(candidate)
            if len(group) >= lookup_chunk:
                submit(group)
                group = []
            while len(pending) > window:
                yield pending.popleft().result()
        if group:
            submit(group)
        while pending:
            yield pending.popleft().result()


def scan(
    roots: Sequence[Path], on_file: Callable[[ScannedFile], None] | None = None, threads: int = 4,
    max_bytes: int | None = None,
) -> tuple[list[ScannedFile], ScanProblems]:
    """Scan `roots` for candidate images and hash them (in threads), in a stable order."""
    problems = ScanProblems([], [])
    files = []
    for scanned in hash_stream(candidates(roots, problems, max_bytes), threads=threads):
        files.append(scanned)
        if on_file:
            on_file(scanned)
    return files, problems
