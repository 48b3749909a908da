"""Submitting a job as a stream: scan, hash, register and enqueue with flat memory.

Files are hashed by a bounded thread pool while the walk goes on; every `chunk` files
are registered in one transaction (committed with the job's scan count), and the batches
of that chunk are put on the queue right after the commit, so workers start within
seconds on any collection size (producer.stream). A file whose path, size and
modification time match an image analysed before reuses that hash (`rehash` reads it
anyway), and a content already analysed with the same backend and model version is
registered finished with that result (`reused_from`), not queued. An interrupted submit
leaves a job marked as still scanning: `producer.resume` re-enqueues its pending images
and finishes the scan without duplicates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from db.jobs import create_job, finish_scan
from db.records import ScannedFile
from emotion_batch.broker import check_broker
from emotion_batch.config import Settings, get_settings
from emotion_batch.messages import check_batch_size
from producer.publish import Enqueuer
from producer.reuse import CHUNK, job_settings, reuse_key
from producer.scan.walk import ScanProblems
from producer.stream import SubmitProgress, job_videos, register_stream, scan_stream
from producer.videos import VideoOptions, VideoSubmit


@dataclass(frozen=True)
class SubmitOptions:
    """What a job is submitted with. `settings` enables submit-time reuse and the size
    limit; `detector` is the job's own (None: the workers' DETECTOR); `video` None: as
    the settings say."""

    backend: str
    batch_size: int
    name: str
    queue: str
    force: bool = False
    rehash: bool = False
    detector: str | None = None
    settings: Settings | None = None
    video: VideoOptions | None = None
    chunk: int = CHUNK

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        paths: Sequence[Path],
        *,
        backend: str | None = None,
        batch_size: int | None = None,
        name: str | None = None,
        fps: float | None = None,
        force: bool = False,
        rehash: bool = False,
        detector: str | None = None,
    ) -> SubmitOptions:
        """The options of a submit by the CLI or the web: what the request leaves out from
        `settings` (the batch size checked here, before anything starts), the job named
        after its first path."""
        return cls(
            backend=backend or settings.backend,
            batch_size=check_batch_size(settings.batch_size if batch_size is None else batch_size),
            name=name or str(paths[0]),
            queue=settings.queue,
            settings=settings,
            force=force,
            rehash=rehash,
            detector=detector,
            video=VideoOptions.from_settings(settings, fps),
        )


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


def submit(
    sessions: sessionmaker[Session],
    client: Celery,
    paths: Sequence[Path],
    options: SubmitOptions,
    *,
    on_scan: Callable[[ScannedFile], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
    on_progress: Callable[[SubmitProgress], None] | None = None,
    on_job: Callable[[int], None] | None = None,
) -> SubmitResult:
    """Scan `paths` into a new job as a stream (see the module docstring); return the
    summary. The job id is in the database from the first moment (`on_job` gets it then,
    `on_progress` sees every committed chunk)."""
    o = options
    check_batch_size(o.batch_size)
    check_broker(client)
    settings = job_settings(o.settings, o.detector)
    with sessions() as session:
        roots = [str(p) for p in paths]
        job = create_job(session, o.name, o.backend, o.batch_size, roots, o.force, scanning=True, detector=o.detector)
    if on_job:
        on_job(job.id)
    problems, progress = ScanProblems([], []), SubmitProgress()
    sender = Enqueuer(client, job, o.queue, o.batch_size, on_batch=on_batch, background=True)
    reuse = reuse_key(o.backend, settings, o.force)
    max_bytes, allowed = (settings.max_file_bytes, settings.readable_roots) if settings else (None, [])
    files = scan_stream(sessions, [Path(p) for p in paths], problems, o.rehash, max_bytes, reuse, allowed=allowed)
    try:
        video_files = register_stream(sessions, job, files, sender, reuse, progress, o.chunk, on_scan, on_progress)
    finally:
        sender.close()
    video = o.video or VideoOptions.from_settings(settings or get_settings())
    videos = job_videos(sessions, client, job, o.queue, video, paths, files=video_files)
    with sessions() as session:
        finish_scan(session, job.id)
    p = progress
    return SubmitResult(
        job.id, p.scanned, p.queued, p.duplicates, p.failed, p.batches, problems, p.reused, p.read, videos
    )
