"""Submitting a job as a stream: scan, hash, register and enqueue with flat memory.

Files are hashed by a bounded thread pool while the walk goes on; every `chunk` files
are registered in one transaction (committed with the job's scan count), and the batches
of that chunk are put on the queue right after the commit, so workers start within
seconds on any collection size. A file whose path, size and modification time match an
image analysed before reuses that hash (`rehash` reads it anyway), and a content already
analysed with the same backend and model version is registered finished with that result
(`reused_from`), not queued. An interrupted submit leaves a job marked as still scanning:
`resume` re-enqueues its pending images and finishes the scan without duplicates.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from queue import Queue
from typing import cast

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from db.folders import recorded_under, unchanged_folders
from db.jobs import (
    Progress,
    Sources,
    create_job,
    finish_scan,
    job_progress,
    known_hashes,
    pending_pages,
    register_chunk,
)
from db.results import ResultKey
from db.schema import Job
from db.session import registering
from db.videos import pending_segment_count
from emotion_batch.ahead import ahead
from emotion_batch.broker import check_broker, send_batch
from emotion_batch.config import BATCH_SIZE_MAX, BATCH_SIZE_MIN, Settings, get_settings
from emotion_batch.errors import ConfigurationError, JobNotFoundError
from emotion_batch.folders import LOOKUP_FILES, whole_folders
from emotion_batch.messages import BatchMessage, ImageRef
from emotion_batch.scan import Candidate, ScannedFile, ScannedFolder, ScanProblems, candidates, hash_stream
from producer.videos import VideoOptions, VideoSubmit, resume_segments, submit_videos

CHUNK = 1000  # files read (new or changed) registered per transaction
# Files not read need less work per file and share a transaction in larger numbers: one
# whose hash is reused but which becomes a new row (re-run under another model version)
# up to 5 x CHUNK, one shared as it is (unchanged since an analysis under the same result
# key: no new row, nothing queued) up to 20 x CHUNK, which makes an unchanged re-run a few
# large set-based writes instead of many small ones. Measured on a re-run of a million
# files under another detector (every file a new row, queued): at 20 x CHUNK 55.9 s and a
# peak of 447 MB; at 5 x CHUNK 66.7-71.8 s and 268-273 MB; at 1 x CHUNK 89.9 s and 178 MB.
# A chunk holds CHUNK * READ_UNITS units: a file read costs READ_UNITS, one whose hash is
# reused REUSED_UNITS, one shared SHARED_UNITS.
READ_UNITS, REUSED_UNITS, SHARED_UNITS = 20, 4, 1
OUTBOX_CHUNKS = 4  # chunks of batches handed to the publishing thread, at most, not yet sent


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


@dataclass(frozen=True)
class SubmitResult:
    """What `submit` did, for the summary the CLI prints."""

    job_id: int
    found: int
    queued: int
    duplicates: int
    failed_at_scan: int
    batches: int
    problems: ScanProblems
    reused: int = 0
    read: int = 0
    videos: VideoSubmit = VideoSubmit()


def check_batch_size(batch_size: int) -> int:
    """The one rule for batch sizes (also BATCH_SIZE's): 1..1024, else one clear error."""
    if not BATCH_SIZE_MIN <= batch_size <= BATCH_SIZE_MAX:
        raise ConfigurationError(f"batch size must be between {BATCH_SIZE_MIN} and {BATCH_SIZE_MAX}, not {batch_size}")
    return batch_size


class Enqueuer:
    """Sends a job's pending images as full batches as they come, the rest on `flush`.

    With `background`, a thread of its own publishes them (in order, on one broker
    connection) while the caller registers the next chunk: publishing is mostly waiting
    for Redis and Celery's message building, which then overlaps the database's work.
    `flush` waits until everything handed over is on the queue and raises a publishing
    error; `close` (always, also after an error or Ctrl-C) sends what was handed over
    and ends the thread."""

    def __init__(
        self,
        client: Celery,
        job: Job,
        queue: str,
        batch_size: int,
        on_batch: Callable[[int], None] | None = None,
        resend: int = 0,
        background: bool = False,
    ) -> None:
        self.client, self.job, self.queue, self.batch_size = client, job, queue, batch_size
        self.on_batch, self.resend = on_batch, resend
        self.buffer: list[ImageRef] = []
        self.batches = self.queued = 0
        self._outbox: Queue[list[list[ImageRef]] | None] = Queue(maxsize=OUTBOX_CHUNKS)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._publish, name="enqueue", daemon=True)
            self._thread.start()

    def add(self, refs: Iterable[ImageRef]) -> None:
        self.buffer.extend(refs)
        if len(self.buffer) < self.batch_size:
            return
        size = self.batch_size
        full = len(self.buffer) - len(self.buffer) % size
        batches = [self.buffer[i : i + size] for i in range(0, full, size)]
        del self.buffer[:full]
        self._dispatch(batches)

    def flush(self) -> None:
        if self.buffer:
            self._dispatch([self.buffer])
            self.buffer = []
        if self._thread is not None:
            self._outbox.join()
        self._raise()

    def close(self) -> None:
        """End the publishing thread once it has sent what it was given."""
        if self._thread is not None:
            self._outbox.put(None)
            self._thread.join()
            self._thread = None

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _dispatch(self, batches: list[list[ImageRef]]) -> None:
        self._raise()
        if self._thread is None:
            with self.client.producer_or_acquire() as producer:  # one connection for the chunk's batches
                for refs in batches:
                    self._send(refs, producer)
            return
        self._outbox.put(batches)

    def _publish(self) -> None:
        ended = False
        try:
            with self.client.producer_or_acquire() as producer:
                ended = self._drain(producer)
        except BaseException as exc:  # noqa: BLE001 (raised in the caller's thread)
            self._error = self._error or exc
            if not ended:
                self._drain(None)  # take what still comes (sending nothing) so flush and close return

    def _drain(self, producer: object) -> bool:
        """Publish what comes until `close`'s end mark; True once it came."""
        while True:
            batches = self._outbox.get()
            try:
                if batches is None:
                    return True
                if self._error is None and producer is not None:
                    for refs in batches:
                        self._send(refs, producer)
            except BaseException as exc:  # noqa: BLE001 (raised in the caller's thread)
                self._error = exc
            finally:
                self._outbox.task_done()

    def _send(self, refs: list[ImageRef], producer: object = None) -> None:
        # A batch is numbered by its first image's id: deterministic, and never shared by
        # two batches of one send (a resend adds its own tag, see BatchMessage.task_id).
        message = BatchMessage(
            self.job.id, refs[0].image_id, self.job.backend, tuple(refs), self.job.force, self.resend
        )
        send_batch(self.client, message, self.queue, producer)
        self.batches += 1
        self.queued += len(refs)
        if self.on_batch:
            self.on_batch(len(refs))


def enqueue(
    client: Celery,
    job_id: int,
    backend: str,
    refs: Sequence[ImageRef],
    batch_size: int,
    force: bool,
    queue: str,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Send `refs` as batches of `batch_size`; return the number of batches sent."""
    job = Job(id=job_id, backend=backend, force=force)
    sender = Enqueuer(client, job, queue, batch_size, on_batch)
    sender.add(refs)
    sender.flush()
    return sender.batches


def _job_settings(settings: Settings | None, detector: str | None) -> Settings | None:
    """The settings a worker analyses a job with: its own detector, if it names one."""
    from emotion_batch.detect import for_detector

    return for_detector(settings, detector) if settings is not None else None


def reuse_key(backend: str, settings: Settings | None, force: bool) -> ResultKey | None:
    """The key a worker with these settings stores its results under, computed without
    loading a model (file hashes), so earlier results can be reused at submit time; None
    (no reuse) with `force`, without settings, or when a model file is absent."""
    if force or settings is None:
        return None
    from emotion_batch.classify import expected_model_version
    from emotion_batch.detect import expected_detector_version

    version = expected_model_version(backend, settings)
    detector = expected_detector_version(settings)
    return ResultKey(backend, version, detector) if version and detector else None


def _units(item: ScannedFile | ScannedFolder) -> int:
    if isinstance(item, ScannedFolder):  # its files, when shared whole; else already counted one by one
        return item.files * SHARED_UNITS if item.shared_from is not None else 0
    return READ_UNITS if item.read else REUSED_UNITS if item.shared is None else SHARED_UNITS


def _chunks(items: Iterator[ScannedFile | ScannedFolder], size: int) -> Iterator[list[ScannedFile | ScannedFolder]]:
    """`size` files read, `5 * size` not read but new rows, `20 * size` shared, or a mix
    in proportion (see READ_UNITS)."""
    chunk: list[ScannedFile | ScannedFolder] = []
    units, full = 0, size * READ_UNITS
    for item in items:
        chunk.append(item)
        units += _units(item)
        if units >= full:
            yield chunk
            chunk, units = [], 0
    if chunk:
        yield chunk


def _stream_register(
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
    for items_chunk in ahead(_chunks(items, chunk), depth=2, name="scan"):
        images: list[ScannedFile | ScannedFolder] = []
        found = walked = 0  # image files, candidate files (a folder shared whole counts its files)
        for item in items_chunk:
            if isinstance(item, ScannedFolder):
                if fresh or item.shared_from is not None:  # a resumed walk may have met files twice: not recorded
                    images.append(item)
                if item.shared_from is not None:
                    found += item.files
                    walked += item.files
                continue
            walked += 1
            progress.read += item.read
            if item.kind != "image":
                videos.append(item)
                continue
            images.append(item)
            found += 1
            if on_scan:
                on_scan(item)
        with writes() as session:
            added = register_chunk(session, job.id, images, walked, reuse, sources)
        sender.add(added.pending)
        progress.scanned += found
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


def _scan_stream(
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
    files (emotion_batch.folders). `rehash` reads every file; a file whose real path
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


def submit(
    sessions: sessionmaker[Session],
    client: Celery,
    paths: Sequence[Path],
    *,
    backend: str,
    batch_size: int,
    name: str,
    force: bool,
    queue: str,
    settings: Settings | None = None,
    rehash: bool = False,
    chunk: int = CHUNK,
    on_scan: Callable[[ScannedFile], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
    on_progress: Callable[[SubmitProgress], None] | None = None,
    video: VideoOptions | None = None,
    on_job: Callable[[int], None] | None = None,
    detector: str | None = None,
) -> SubmitResult:
    """Scan `paths` into a new job as a stream (see the module docstring); return the
    summary. The job id is in the database from the first moment (`on_job` gets it then,
    `on_progress` sees every committed chunk); `settings` enables submit-time reuse and
    the size limit; `detector` is the job's own (None: the workers' DETECTOR)."""
    check_batch_size(batch_size)
    check_broker(client)
    settings = _job_settings(settings, detector)
    with sessions() as session:
        job = create_job(
            session, name, backend, batch_size, [str(p) for p in paths], force, scanning=True, detector=detector
        )
    if on_job:
        on_job(job.id)
    problems = ScanProblems([], [])
    progress = SubmitProgress()
    sender = Enqueuer(client, job, queue, batch_size, on_batch=on_batch, background=True)
    max_bytes = settings.max_file_bytes if settings else None
    reuse = reuse_key(backend, settings, force)
    allowed = settings.readable_roots if settings else []
    files = _scan_stream(sessions, [Path(p) for p in paths], problems, rehash, max_bytes, reuse, allowed=allowed)
    try:
        video_files = _stream_register(sessions, job, files, sender, reuse, progress, chunk, on_scan, on_progress)
    finally:
        sender.close()
    videos = submit_videos(
        registering(sessions),
        client,
        job.id,
        paths,
        backend=backend,
        batch_size=batch_size,
        force=force,
        queue=queue,
        options=video or VideoOptions.from_settings(settings or get_settings()),
        files=video_files,
    )
    with sessions() as session:
        finish_scan(session, job.id)
    return SubmitResult(
        job.id,
        progress.scanned,
        progress.queued,
        progress.duplicates,
        progress.failed,
        progress.batches,
        problems,
        progress.reused,
        progress.read,
        videos,
    )


@dataclass
class Resumed:
    """What `resume` sent: batches of images already registered, and what finishing an
    interrupted scan added."""

    batches: int = 0
    requeued: int = 0
    scan: SubmitProgress | None = None
    problems: ScanProblems = field(default_factory=lambda: ScanProblems([], []))


def resume_job(
    sessions: sessionmaker[Session],
    client: Celery,
    job_id: int,
    queue: str,
    settings: Settings | None = None,
    on_batch: Callable[[int], None] | None = None,
    on_progress: Callable[[SubmitProgress], None] | None = None,
    chunk: int = CHUNK,
) -> Resumed:
    """Re-enqueue a job's pending images page by page (the database is the source of
    truth), then finish its scan if the submit was interrupted."""
    with sessions() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise JobNotFoundError(job_id)
    check_broker(client)  # a clear BrokerUnavailableError (503 over HTTP), not the publisher's traceback
    size = check_batch_size(job.batch_size)
    # Tagged sends: a resumed batch must not share its task id with a copy in flight, or
    # it would take over that copy's leases and count a second attempt on busy images.
    sender = Enqueuer(client, job, queue, size, on_batch, resend=int(time.time() * 1000), background=True)
    try:
        for refs in pending_pages(sessions, job_id):
            sender.add(refs)
        sender.flush()
        segments = resume_segments(sessions, client, job_id, job.backend, size, job.force, queue)
        resumed = Resumed(sender.batches + segments, sender.queued)
        if not job.scan_complete:
            progress = SubmitProgress()
            roots = [Path(p) for p in json.loads(job.roots)]
            max_bytes = settings.max_file_bytes if settings else None
            reuse = reuse_key(job.backend, _job_settings(settings, job.detector), job.force)
            allowed = settings.readable_roots if settings else []
            files = _scan_stream(sessions, roots, resumed.problems, False, max_bytes, reuse, job.scanned, allowed)
            _stream_register(sessions, job, files, sender, reuse, progress, chunk, None, on_progress, fresh=False)
            # videos of the part walked before the interruption were not registered yet: all of them now
            segments += submit_videos(
                registering(sessions),
                client,
                job_id,
                roots,
                backend=job.backend,
                batch_size=size,
                force=job.force,
                queue=queue,
                options=VideoOptions.from_settings(settings or get_settings()),
                allowed=allowed,
            ).segments
            with sessions() as session:
                finish_scan(session, job_id)
            resumed.scan = progress
            resumed.batches = sender.batches + segments
        return resumed
    finally:
        sender.close()


def resume(sessions: sessionmaker[Session], client: Celery, job_id: int, queue: str) -> int:
    """Re-enqueue a job's pending images (and finish an interrupted scan); return batches sent."""
    return resume_job(sessions, client, job_id, queue).batches


def wait_for_job(
    sessions: sessionmaker[Session],
    job_id: int,
    timeout: float | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    interval: float = 0.5,
    on_stall: Callable[[], object] | None = None,
    stall_seconds: float = 420.0,
) -> Progress:
    """Poll the database until the job has no pending image (or `timeout` passes).

    With `on_stall`, a job that makes no progress for `stall_seconds` gets it called
    (the CLI re-enqueues the pending images: redelivery never double-counts).
    """
    deadline = time.monotonic() + timeout if timeout else None
    last_finished, last_change = (-1, -1), time.monotonic()
    while True:
        with sessions() as session:
            progress = job_progress(session, job_id)
            segments_left = pending_segment_count(session, job_id)
        if on_progress:
            on_progress(progress)
        if (progress.complete and not segments_left) or (deadline and time.monotonic() > deadline):
            return progress
        if (progress.finished, segments_left) != last_finished:
            last_finished, last_change = (progress.finished, segments_left), time.monotonic()
        elif on_stall and time.monotonic() - last_change > stall_seconds:
            on_stall()
            last_change = time.monotonic()
        time.sleep(interval)


def retry_failed(
    sessions: sessionmaker[Session], client: Celery, job_id: int, queue: str, settings: Settings | None = None
) -> tuple[int, int]:
    """Put a job's failed images (and failed video segments) back to pending and enqueue
    them (finishing an interrupted scan too, as `resume_job`): (images and segments reset,
    batches sent). The CLI and the web call it."""
    from db.jobs import reset_failed
    from db.videos import reset_failed_segments

    check_broker(client)
    with sessions() as session:
        count = reset_failed(session, job_id)
        count += reset_failed_segments(session, job_id)
    return count, resume_job(sessions, client, job_id, queue, settings=settings).batches
