"""After a submit: resume a job (re-enqueue what is pending, finish an interrupted scan),
retry its failed images, wait for it to finish."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from db.jobs import Progress, finish_scan, get_job, job_progress, pending_pages, reset_failed
from db.schema import Job
from db.videos import pending_segment_count, reset_failed_segments
from emotion_batch.broker import check_broker
from emotion_batch.config import Settings, get_settings
from emotion_batch.messages import check_batch_size
from producer.publish import Enqueuer
from producer.reuse import CHUNK, job_settings, reuse_key
from producer.scan.walk import ScanProblems
from producer.stream import SubmitProgress, job_videos, register_stream, scan_stream
from producer.videos import VideoOptions, resume_segments


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
    truth) and its pending video segments, then finish its scan if the submit was
    interrupted."""
    with sessions() as session:
        job = get_job(session, job_id)
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
            resumed.scan = SubmitProgress()
            segments += _finish_scan(sessions, client, job, sender, resumed, settings, on_progress, chunk)
            resumed.batches = sender.batches + segments
        return resumed
    finally:
        sender.close()


def _finish_scan(
    sessions: sessionmaker[Session],
    client: Celery,
    job: Job,
    sender: Enqueuer,
    resumed: Resumed,
    settings: Settings | None,
    on_progress: Callable[[SubmitProgress], None] | None,
    chunk: int,
) -> int:
    """Walk the rest of an interrupted submit's roots (from where its scan count says)
    into the job, then its videos; return the video segments queued."""
    assert resumed.scan is not None
    roots = [Path(p) for p in json.loads(job.roots)]
    max_bytes = settings.max_file_bytes if settings else None
    reuse = reuse_key(job.backend, job_settings(settings, job.detector), job.force)
    allowed = settings.readable_roots if settings else []
    files = scan_stream(sessions, roots, resumed.problems, False, max_bytes, reuse, job.scanned, allowed)
    register_stream(sessions, job, files, sender, reuse, resumed.scan, chunk, None, on_progress, fresh=False)
    # videos of the part walked before the interruption were not registered yet: all of them now
    video = VideoOptions.from_settings(settings or get_settings())
    segments = job_videos(sessions, client, job, sender.queue, video, roots, allowed=allowed).segments
    with sessions() as session:
        finish_scan(session, job.id)
    return segments


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
    check_broker(client)
    with sessions() as session:
        count = reset_failed(session, job_id)
        count += reset_failed_segments(session, job_id)
    return count, resume_job(sessions, client, job_id, queue, settings=settings).batches
