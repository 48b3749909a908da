"""Hashing the walk's files, as a stream.

Hashing runs in bounded threads while the walk goes on (`hash_stream`), results come out
in walk order, and a file whose path, size and modification time match an earlier
analysed image reuses its hash (the `known` lookup) instead of being read again.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from db.records import Candidate, ScannedFile, ScannedFolder
from emotion_batch.hashing import CHUNK
from producer.scan.walk import OUTSIDE_ROOTS, ScanProblems, candidates, sniff_image, video_rules


def _kind_by_content(candidate: Candidate, head: bytes) -> str:
    """The kind once the first bytes are known (an MP4 named .jpg is a video)."""
    sniff_video = video_rules()[1]
    if sniff_video(head):
        return "video"
    if candidate.kind == "video" and (sniff_image(head) or head[4:8] == b"ftyp"):
        return "image" if sniff_image(head) else "video"
    return candidate.kind


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
# smaller one to a single thread of its own. Large files are read and hashed outside the
# interpreter lock, so threads add up; a small file costs a few system calls, each a
# release and retake of the lock, and more threads only contend for it with the thread
# registering the files (bench/RESULTS.md, "Hashing threads").
POOL_TASK_BYTES = 8 << 20

Pending = Future | list[ScannedFile | ScannedFolder]  # a hashing task, or items known at once


class _Lanes:
    """The work handed to the hashing threads, in walk order (`pending`): lists of items
    known at once and futures of hashing tasks, a task of large files to the pool, one of
    small files to a thread of its own (see POOL_TASK_BYTES)."""

    def __init__(
        self, pool: ThreadPoolExecutor, small: ThreadPoolExecutor, known: KnownHashes | None, per_task: int
    ) -> None:
        self.pool, self.small, self.known, self.per_task = pool, small, known, per_task
        self.pending: deque[Pending] = deque()

    def _hash_later(self, ready: list[ScannedFile | ScannedFolder], unknown: list[Candidate]) -> None:
        self.pending.append(ready)
        lane = self.pool if sum(c.size for c in unknown) >= POOL_TASK_BYTES else self.small
        self.pending.append(lane.submit(_hash_all, unknown))

    def submit(self, batch: list[Candidate | ScannedFolder]) -> None:
        """Hand on `batch`: known files and folders at once, the others to hash."""
        files = [c for c in batch if isinstance(c, Candidate) and not c.error and c.kind == "image"]
        reuse = self.known(files) if self.known and files else {}
        new = tuple.__new__  # as in `candidates`
        ready: list[ScannedFile | ScannedFolder] = []
        unknown: list[Candidate] = []
        for c in batch:
            hit = reuse.get(c.path) if isinstance(c, Candidate) else None
            if isinstance(c, Candidate) and hit is None:
                unknown.append(c)
                if len(unknown) >= self.per_task:
                    self._hash_later(ready, unknown)
                    ready, unknown = [], []
                continue
            if unknown:  # a folder or a known file: the files before it are hashed first
                self._hash_later(ready, unknown)
                ready, unknown = [], []
            if isinstance(c, ScannedFolder):  # passes on in its place
                ready.append(c)
            elif hit is not None:
                sha, shared = hit
                ready.append(new(ScannedFile, (c.path, c.folder, sha, c.size, c.mtime, None, False, c.kind, shared)))
        if unknown:
            self._hash_later(ready, unknown)
        else:
            self.pending.append(ready)

    def head_ready(self) -> bool:
        """Whether the first pending item can be taken without waiting."""
        head = self.pending[0]
        return isinstance(head, list) or head.done()

    def take(self) -> list[ScannedFile | ScannedFolder]:
        """The first pending item's results (waiting for its hashing if need be)."""
        head = self.pending.popleft()
        return head if isinstance(head, list) else head.result()


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
    in_flight = weight = 0  # weight: files in `group`, a folder shared whole counted by its files
    group: list[Candidate | ScannedFolder] = []
    with (
        ThreadPoolExecutor(max_workers=threads, thread_name_prefix="hash") as pool,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="hash-small") as small,
    ):
        lanes = _Lanes(pool, small, known, per_task)
        for candidate in found:
            group.append(candidate)
            weight += candidate.files if isinstance(candidate, ScannedFolder) else 1
            if weight >= lookup_chunk:
                lanes.submit(group)
                in_flight += len(group)
                group, weight = [], 0
            # what is ready at the head goes on at once (files known, folders, hashing
            # done); beyond `window` files in flight, the walk waits for the hashing
            while lanes.pending and (in_flight > window or lanes.head_ready()):
                done = lanes.take()
                in_flight -= len(done)
                yield from done
        if group:
            lanes.submit(group)
        while lanes.pending:
            yield from lanes.take()


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
