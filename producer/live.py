"""Running a live source as a job: open it (no job when it cannot be), record the job
and its one video (`live`), sample it into the spool, hand each segment to the workers
as the video segments of a file go, and end the video with when and why it stopped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from db.jobs import create_job
from db.live import add_live_segment, end_live_video, register_live_video
from emotion_batch.broker import check_broker, send_segment
from emotion_batch.live import LiveOptions, LiveResult, open_source, sample_live, shown
from emotion_batch.messages import SegmentMessage
from emotion_batch.spool import keep, write_frame


@dataclass(frozen=True)
class LiveJob:
    """Where a live job's results and frames go."""

    backend: str
    batch_size: int
    queue: str
    spool_root: Path
    keep_frames: bool = False
    detector: str | None = None


@dataclass(frozen=True)
class LiveRun:
    """A finished live run: its job, video and what was sampled."""

    job_id: int
    video_id: int
    result: LiveResult
    note: str


class _QueueSink:
    """Frames into the spool; each finished segment recorded, then sent as one task."""

    def __init__(
        self, sessions: sessionmaker[Session], client: Celery, job: LiveJob, job_id: int, video_id: int, spool: Path
    ) -> None:
        self.sessions, self.client, self.job = sessions, client, job
        self.job_id, self.video_id, self.spool = job_id, video_id, spool

    def frame(self, segment_no: int, k: int, captured: float, bgr: np.ndarray) -> None:
        write_frame(self.spool, segment_no, k, captured, bgr)

    def segment(self, segment_no: int, start_s: float, end_s: float, frames: int) -> None:
        with self.sessions() as session:
            add_live_segment(session, self.video_id, segment_no, start_s, end_s, frames)
        message = SegmentMessage(self.job_id, self.video_id, segment_no, self.job.backend, self.job.batch_size, False)
        send_segment(self.client, message, self.job.queue)


def stop_note(result: LiveResult, started: datetime) -> str:
    """The video's note: when and why sampling stopped, and what it took."""
    ended = datetime.fromtimestamp(started.timestamp() + result.seconds, timezone.utc)
    return (
        f"live source stopped at {ended:%Y-%m-%d %H:%M:%S} UTC after {result.seconds:.1f} s: {result.reason}; "
        f"{result.frames} frames sampled in {result.segments} segments"
    )


def run_live(
    sessions: sessionmaker[Session],
    client: Celery,
    source: str,
    options: LiveOptions,
    job: LiveJob,
    name: str,
    stop: threading.Event,
    on_job: Callable[[int], None] = lambda _id: None,
    notify: Callable[[str], None] = lambda _line: None,
) -> LiveRun:
    """Open `source` (`LiveSourceError`, and no job, when it cannot be), then sample it
    into a new job until the duration, `stop`, or the end of the source. Only `shown`
    (no password) is stored; `name` should not hold one either."""
    check_broker(client)
    cap = open_source(source)
    started = datetime.now(timezone.utc)
    try:
        with sessions() as session:
            record = create_job(
                session, name, job.backend, job.batch_size, [], False, scanning=True, detector=job.detector
            )
            spool = (job.spool_root / f"job{record.id}-{started:%Y%m%dT%H%M%S}").absolute()
            video_id = register_live_video(session, record.id, shown(source), str(spool), options.fps, started)
    except BaseException:
        cap.release()
        raise
    on_job(record.id)
    if job.keep_frames:
        keep(spool)
    sink = _QueueSink(sessions, client, job, record.id, video_id, spool)
    try:
        result = sample_live(source, cap, options, sink, stop.is_set, notify)
    except BaseException as exc:  # the broker or the database failing, a second Ctrl-C: the job says so
        reason = f"stopped by {type(exc).__name__}: {exc}"
        failed = LiveResult(seconds=(datetime.now(timezone.utc) - started).total_seconds(), reason=reason)
        with sessions() as session:
            end_live_video(session, video_id, failed.seconds, stop_note(failed, started)[:1000])
        raise
    note = stop_note(result, started)
    with sessions() as session:
        end_live_video(session, video_id, result.seconds, note)
    return LiveRun(record.id, video_id, result, note)
