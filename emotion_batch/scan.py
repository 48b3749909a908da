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
from functools import cache
from pathlib import Path
from typing import NamedTuple

from emotion_batch.hashing import CHUNK

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


class ScannedFile(NamedTuple):
    """One candidate image: where it is and what its content hashes to. (A named tuple,
    as `Candidate`: a million of them are made per million files.)"""

    path: str
    folder: str
    sha256: str
    size: int
    mtime: datetime | None
    error: str | None = None
    read: bool = True  # False: hash reused from an earlier image (same path, size, mtime)
    kind: str = "image"  # or "video" (by content when read, else by extension)
    shared: int | None = None  # that earlier image, when the job shares it as it is


class Candidate(NamedTuple):
    """A file found by the walk, stat'ed once (size and mtime), not yet read."""

    path: str
    folder: str
    size: int
    mtime: datetime | None
    error: str | None = None
    kind: str = "image"  # by extension or first bytes; hashing reads the content and decides
    mtime_ns: int = 0  # the modification time to the nanosecond (a folder's listing digest)


class ScannedFolder(NamedTuple):
    """A folder walked whole (`emotion_batch.folders`): `files` image files whose listing
    (paths, sizes, modification times) hashes to `digest`. With `shared_from`, the folder
    is unchanged since that job registered it and its files are not in the stream: the
    job shares that job's rows of it. Without, its files came just before it."""

    folder: str
    files: int
    digest: str
    shared_from: int | None = None


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
def _video_rules() -> tuple[frozenset[str], Callable[[bytes], bool]]:
    from emotion_batch.video import VIDEO_EXTENSIONS, sniff_video

    return frozenset(VIDEO_EXTENSIONS), sniff_video


def classify(path: str) -> str | None:
    """ "image" or "video" by extension, else by the first bytes; None for anything else."""
    video_extensions, sniff_video = _video_rules()
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
    return "image" if suffix in IMAGE_EXTENSIONS else "video" if suffix in _video_rules()[0] else None


def _kind_by_content(candidate: Candidate, head: bytes) -> str:
    """The kind once the first bytes are known (an MP4 named .jpg is a video)."""
    sniff_video = _video_rules()[1]
    if sniff_video(head):
        return "video"
    if candidate.kind == "video" and (sniff_image(head) or head[4:8] == b"ftyp"):
        return "image" if sniff_image(head) else "video"
    return candidate.kind


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
    new = tuple.__new__  # a named tuple made without its Python-level __new__ (a million per million files)
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


def refused_outside(path: str, folder: str, kind: str) -> ScannedFile:
    """A file whose real path leaves the allowed roots: recorded as failed, never read."""
    return ScannedFile(path, folder, _placeholder_key(path), 0, None, OUTSIDE_ROOTS, read=False, kind=kind)


def _placeholder_key(path: str) -> str:
    """A content key for a file that was not hashed: derived from its path."""
    return hashlib.sha256(b"unhashed\0" + os.fsencode(path)).hexdigest()


def hash_candidate(candidate: Candidate) -> ScannedFile:
    """Hash one file (its first bytes also settle image or video); an unreadable file gets
    a path-derived key and its error."""
    if candidate.error:
        return ScannedFile(
            candidate.path,
            candidate.folder,
            _placeholder_key(candidate.path),
            candidate.size,
            candidate.mtime,
            candidate.error,
            read=False,
            kind=candidate.kind,
        )
    digest = hashlib.sha256()
    try:
        # os-level reads: a buffered file object costs four more system calls per file
        # (fstat, ioctl, lseek, a second buffer fill), each a release of the interpreter lock
        fd = os.open(candidate.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            head = chunk = os.read(fd, min(CHUNK, candidate.size + 1))
            while chunk:
                digest.update(chunk)
                chunk = os.read(fd, CHUNK)
        finally:
            os.close(fd)
    except OSError as exc:
        reason = f"unreadable file: {exc.strerror or exc}"
        return ScannedFile(
            candidate.path, candidate.folder, _placeholder_key(candidate.path), 0, None, reason, kind=candidate.kind
        )
    return ScannedFile(
        candidate.path,
        candidate.folder,
        digest.hexdigest(),
        candidate.size,
        candidate.mtime,
        kind=_kind_by_content(candidate, head[:16]),
    )


def scan_file(path: Path) -> ScannedFile:
    """Stat and hash one file (an unreadable one gets its error)."""
    try:
        info = os.stat(path)
    except OSError as exc:
        return ScannedFile(
            str(path),
            str(Path(path).parent),
            _placeholder_key(str(path)),
            0,
            None,
            f"unreadable file: {exc.strerror or exc}",
        )
    mtime = datetime.fromtimestamp(info.st_mtime, tz=timezone.utc)
    return hash_candidate(Candidate(str(path), os.path.dirname(str(path)), info.st_size, mtime))


KnownHashes = Callable[[list[Candidate]], dict[str, tuple[str, int | None]]]


def _hash_all(batch: list[Candidate]) -> list[ScannedFile]:
    return [hash_candidate(c) for c in batch]


# A task of at least this many bytes to read goes to the pool of hashing threads; a
# smaller one to a single thread of its own. Reading and hashing large files runs outside
# the interpreter lock, so threads add up (1,500 files of 2 MB, page cache warm, 2 cores:
# 2.0 s with one thread, 1.0 s with two or four); a small file costs a few system calls,
# each a release and retake of the lock, and more threads only contend for it with the
# thread registering the files (a million 3 KB files submitted: 80 s with one hashing
# thread, 95 s with two, 110 s with four).
POOL_TASK_BYTES = 8 << 20


def hash_stream(
    found: Iterable[Candidate | ScannedFolder],
    known: KnownHashes | None = None,
    threads: int = 4,
    window: int = 4096,
    lookup_chunk: int = 2000,
    per_task: int = 32,
) -> Iterator[ScannedFile | ScannedFolder]:
    """Hash `found` while it is still being walked, in order (a `ScannedFolder` among
    the files passes on in its place).

    At most about `window` files are in flight, so memory stays flat whatever the number
    of files; they are hashed `per_task` at a time (a task per file cost the walking
    thread more than the hashing), a task of large files by a pool of `threads`, one of
    small files by a thread of its own (see POOL_TASK_BYTES). `known(candidates)` may
    return {path: (sha256, shared)} for files whose hash is already known (same path,
    size and mtime as an analysed image): those are not read, and `shared` (an image id
    or None) is passed on with them.
    """
    pending: deque[Future | list[ScannedFile | ScannedFolder]] = deque()  # in walk order: hashing, or known at once
    new = tuple.__new__  # as in `candidates`
    in_flight = 0
    group: list[Candidate | ScannedFolder] = []
    with (
        ThreadPoolExecutor(max_workers=threads, thread_name_prefix="hash") as pool,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="hash-small") as small,
    ):

        def hash_later(ready: list[ScannedFile | ScannedFolder], unknown: list[Candidate]) -> None:
            pending.append(ready)
            lane = pool if sum(c.size for c in unknown) >= POOL_TASK_BYTES else small
            pending.append(lane.submit(_hash_all, unknown))

        def submit(batch: list[Candidate | ScannedFolder]) -> None:
            files = [c for c in batch if isinstance(c, Candidate) and not c.error and c.kind == "image"]
            reuse = known(files) if known and files else {}
            ready: list[ScannedFile | ScannedFolder] = []
            unknown: list[Candidate] = []
            for c in batch:
                if not isinstance(c, Candidate):  # a folder: passes on in its place
                    if unknown:
                        hash_later(ready, unknown)
                        ready, unknown = [], []
                    ready.append(c)
                    continue
                hit = reuse.get(c.path)
                if hit is None:
                    unknown.append(c)
                    if len(unknown) >= per_task:
                        hash_later(ready, unknown)
                        ready, unknown = [], []
                    continue
                if unknown:
                    hash_later(ready, unknown)
                    ready, unknown = [], []
                sha, shared = hit
                ready.append(new(ScannedFile, (c.path, c.folder, sha, c.size, c.mtime, None, False, c.kind, shared)))
            if unknown:
                hash_later(ready, unknown)
            else:
                pending.append(ready)

        weight = 0  # files in `group`, a folder shared whole counted by its files
        for candidate in found:
            group.append(candidate)
            weight += candidate.files if isinstance(candidate, ScannedFolder) else 1
            if weight >= lookup_chunk:
                submit(group)
                in_flight += len(group)
                group, weight = [], 0
            # what is ready at the head goes on at once (files known, folders, hashing
            # done); beyond `window` files in flight, the walk waits for the hashing
            while pending and (in_flight > window or _ready(pending[0])):
                done = _results(pending.popleft())
                in_flight -= len(done)
                yield from done
        if group:
            submit(group)
        while pending:
            yield from _results(pending.popleft())


def _ready(item: Future | list[ScannedFile | ScannedFolder]) -> bool:
    return isinstance(item, list) or item.done()


def _results(item: Future | list[ScannedFile | ScannedFolder]) -> list[ScannedFile | ScannedFolder]:
    return item if isinstance(item, list) else item.result()


def scan(
    roots: Sequence[Path],
    on_file: Callable[[ScannedFile], None] | None = None,
    threads: int = 4,
    max_bytes: int | None = None,
) -> tuple[list[ScannedFile], ScanProblems]:
    """Scan `roots` for candidate images and hash them (in threads), in a stable order."""
    problems = ScanProblems([], [])
    files = []
    for scanned in hash_stream(candidates(roots, problems, max_bytes), threads=threads):
        if not isinstance(scanned, ScannedFile) or scanned.kind != "image":
            continue
        files.append(scanned)
        if on_file:
            on_file(scanned)
    return files, problems
