"""Submitting a job: scan, register every image in the database, enqueue batches."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from db.jobs import Progress, create_job, job_progress, pending_refs, register_images
from db.videos import pending_segment_count
from emotion_batch.broker import check_broker, send_batch
from emotion_batch.config import get_settings
from emotion_batch.messages import BatchMessage, ImageRef
from emotion_batch.scan import ScannedFile, ScanProblems, scan
from producer.videos import VideoOptions, VideoSubmit, resume_segments, submit_videos


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
    videos: VideoSubmit = VideoSubmit()


def enqueue(
    client: Celery, job_id: int, backend: str, refs: Sequence[ImageRef], batch_size: int,
    force: bool, queue: str, first_batch: int = 0, on_batch: Callable[[int], None] | None = None,
) -> int:
    """Send `refs` as batches of `batch_size`; return the number of batches sent."""
    batches = 0
    for start in range(0, len(refs), batch_size):
        chunk = tuple(refs[start : start + batch_size])
        send_batch(client, BatchMessage(job_id, first_batch + batches, backend, chunk, force), queue)
        batches += 1
        if on_batch:
            on_batch(len(chunk))
    return batches


def submit(
    sessions: sessionmaker[Session], client: Celery, paths: Sequence[Path], *, backend: str,
    batch_size: int, name: str, force: bool, queue: str,
    on_scan: Callable[[ScannedFile], None] | None = None,
    on_batch: Callable[[int], None] | None = None, video: VideoOptions | None = None,
) -> SubmitResult:
    """Scan `paths`, record the job and its images, enqueue the pending ones."""
    check_broker(client)
    files, problems = scan(paths, on_scan)
    with sessions() as session:
        job = create_job(session, name, backend, batch_size, [str(p) for p in paths], force)
        registered, duplicates = register_images(session, job, files)
        refs = pending_refs(session, job.id)
    batches = enqueue(client, job.id, backend, refs, batch_size, force, queue, on_batch=on_batch)
    failed = registered - len(refs)
    videos = submit_videos(sessions, client, job.id, paths, backend=backend, batch_size=batch_size,
                           force=force, queue=queue, options=video or VideoOptions.from_settings(get_settings()))
    return SubmitResult(job.id, len(files), len(refs), duplicates, failed, batches, problems, videos)


def resume(
    sessions: sessionmaker[Session], client: Celery, job_id: int, queue: str, batch_size: int | None = None
) -> int:
    """Re-enqueue a job's pending images (the database is the source of truth)."""
    from db.schema import Job

    with sessions() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise LookupError(f"no job {job_id}")
        refs = pending_refs(session, job_id)
    first = int(time.time() * 1000) % 10**9  # fresh task ids, distinct from earlier sends
    size = batch_size or job.batch_size
    return enqueue(client, job_id, job.backend, refs, size, job.force, queue, first) + resume_segments(
        sessions, client, job_id, job.backend, size, job.force, queue)


def wait_for_job(
    sessions: sessionmaker[Session], job_id: int, timeout: float | None = None,
    on_progress: Callable[[Progress], None] | None = None, interval: float = 0.5,
    on_stall: Callable[[], object] | None = None, stall_seconds: float = 420.0,
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
