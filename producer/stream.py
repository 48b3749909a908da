"""The streaming registration that submit and resume share: the walk hashed as it goes
(producer.scan), registered chunk by chunk (db.registration), each chunk's batches
published right after its commit (producer.publish), with flat memory."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from db.folders import recorded_under, unchanged_folders
from db.records import Candidate, ScannedFile, ScannedFolder
from db.registration import Sources, known_hashes, register_chunk
from db.results import ResultKey
from db.schema import Job
from db.session import registering
from producer.publish import Enqueuer
from producer.reuse import weighted_chunks
from producer.scan.ahead import ahead
from producer.scan.folders import LOOKUP_FILES, whole_folders
from producer.scan.hash import hash_stream
from producer.scan.walk import ScanProblems, candidates
from producer.videos import VideoOptions, VideoSubmit, submit_videos


@dataclass
class SubmitProgress:
    """Where a streaming submit stands (passed to `on_progress` after every chunk)."""

    scanned: int = 0  # candidate files walked and hashed (or hash reused)
    read: int = 0  # of which actually read to hash them
    registered: int = 0  # rows committed (distinct contents)
    queued: int = 0  # images put on the queue
    reused: int = 0  # finished with an earlier result: at once, or when another job's analysis of it ends
    failed: int = 0  # failed at scan time (unreadable, too large)
    duplicates: int = 0
    batches: int = 0


@dataclass
class _Sorted:
    """One chunk of the stream sorted for registration."""

    images: list[ScannedFile | ScannedFolder]  # image files and folders to register
    found: int = 0  # image files (a folder shared whole counts its files)
    walked: int = 0  # candidate files, likewise


def _sort_chunk(
    chunk: list[ScannedFile | ScannedFolder],
    progress: SubmitProgress,
    videos: list[ScannedFile],
    on_scan: Callable[[ScannedFile], None] | None,
    fresh: bool,
) -> _Sorted:
    """The chunk's images and folders to register (its videos go to `videos`)."""
    sorted_ = _Sorted([])
    for item in chunk:
        if isinstance(item, ScannedFolder):
            if fresh or item.shared_from is not None:  # a resumed walk may have met files twice: not recorded
                sorted_.images.append(item)
            if item.shared_from is not None:
                sorted_.found += item.files
                sorted_.walked += item.files
            continue
        sorted_.walked += 1
        progress.read += item.read
        if item.kind != "image":
            videos.append(item)
            continue
        sorted_.images.append(item)
        sorted_.found += 1
        if on_scan:
            on_scan(item)
    return sorted_


def register_stream(
    sessions: sessionmaker[Session],
    job: Job,
    items: Iterator[ScannedFile | ScannedFolder],
    sender: Enqueuer,
    reuse: ResultKey | None,
    progress: SubmitProgress,
    chunk: int,
    on_scan: Callable[[ScannedFile], None] | None,
    on_progress: Callable[[SubmitProgress], None] | None,
    fresh: bool = True,
) -> list[ScannedFile]:
    """Register `items` chunk by chunk, enqueueing each chunk's batches after its commit;
    return the videos met on the way (few: registered and probed by producer.videos).
    `fresh`: the job has no image yet (not a resumed one)."""
    videos: list[ScannedFile] = []
    sources = Sources() if fresh else None
    writes = registering(sessions)  # a chunk's look-ups decide its writes: the write lock first
    for items_chunk in ahead(weighted_chunks(items, chunk), depth=2, name="scan"):
        part = _sort_chunk(items_chunk, progress, videos, on_scan, fresh)
        with writes() as session:
            added = register_chunk(session, job.id, part.images, part.walked, reuse, sources)
        sender.add(added.pending)
        progress.scanned += part.found
        progress.registered += len(added.pending) + added.reused + added.failed + added.following
        progress.reused += added.reused + added.following
        progress.failed += added.failed
        progress.duplicates += added.duplicates
        progress.queued, progress.batches = sender.queued, sender.batches
        if on_progress:
            on_progress(progress)
    sender.flush()
    progress.queued, progress.batches = sender.queued, sender.batches
    if on_progress:
        on_progress(progress)
    return videos


def scan_stream(
    sessions: sessionmaker[Session],
    roots: Sequence[Path],
    problems: ScanProblems,
    rehash: bool,
    max_bytes: int | None,
    reuse: ResultKey | None,
    skip: int = 0,
    allowed: Sequence[Path] = (),
) -> Iterator[ScannedFile | ScannedFolder]:
    """The walk under `roots` (from its `skip`-th candidate file on) as files hashed or
    found known, and folders: shared whole when unchanged, else recorded after their
    files (producer.scan.folders). `rehash` reads every file; a file whose real path
    leaves the `allowed` roots is recorded as failed, never read."""

    def known(found: list[Candidate]) -> dict[str, tuple[str, int | None]]:
        with sessions() as session:
            return known_hashes(session, found, reuse)

    def unchanged(folders: list[ScannedFolder]) -> dict[str, int]:
        with sessions() as session:
            return unchanged_folders(session, folders, cast(ResultKey, reuse))

    found = itertools.islice(candidates(roots, problems, max_bytes, allowed), skip, None)
    alone = frozenset(os.path.dirname(str(root.absolute())) for root in roots if root.is_file())  # as walk_files
    match = None
    if not rehash and reuse is not None:
        with sessions() as session:
            walked_before = recorded_under(session, [str(root.absolute()) for root in roots if root.is_dir()])
        match = unchanged if walked_before else None
    walked = whole_folders(found, match, skip > 0, alone)
    # the hashing keeps in hand what the folder look-ups hold back (see LOOKUP_FILES)
    return hash_stream(walked, None if rehash else known, window=2 * LOOKUP_FILES)


def job_videos(
    sessions: sessionmaker[Session],
    client: Celery,
    job: Job,
    queue: str,
    options: VideoOptions,
    paths: Sequence[Path],
    files: Sequence[ScannedFile] | None = None,
    allowed: Sequence[Path] = (),
) -> VideoSubmit:
    """Register and queue the job's videos: the `files` its walk met, else those under
    `paths` (producer.videos)."""
    return submit_videos(
        registering(sessions),
        client,
        job.id,
        paths,
        backend=job.backend,
        batch_size=job.batch_size,
        force=job.force,
        queue=queue,
        options=options,
        files=files,
        allowed=allowed,
    )
