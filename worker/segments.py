"""What one video segment task does: claim it, sample its frames, analyse them like
photos (detect -> crop -> one batched classify call per `batch_size` frames), and store
every sampled frame's outcome in one transaction.

Memory stays flat: at most `batch_size` decoded frames are held at a time, and a
segment covers `VIDEO_SEGMENT_SECONDS` of video whatever the video's length. A worker
killed mid-segment has written nothing for it; the redelivered task does it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from billiard.exceptions import SoftTimeLimitExceeded
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from db.schema import Job
from db.session import make_session_factory
from db.videos import SegmentWork, claim_segment, store_segment
from emotion_batch.messages import SegmentMessage, chunked
from emotion_batch.pipeline import Analyzer, ImageResult
from emotion_batch.spool import read_frames, release_segment, segment_frames
from emotion_batch.video import Sample, read_samples
from worker import runtime

logger = logging.getLogger(__name__)


@dataclass
class SegmentSummary:
    """What a segment task did (its return value, shown in Flower)."""

    job_id: int
    video_id: int
    segment_no: int
    frames: int = 0
    written: int = 0
    faces: int = 0
    failed_frames: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, float | int]:
        return asdict(self)


def _samples(work: SegmentWork) -> Iterator[Sample]:
    """The segment's sampled frames: decoded from its video file, or read from the spool."""
    if not work.live:
        yield from read_samples(work.path, work.samples, work.sample_fps, work.native_fps)
        return
    assert work.started_at is not None
    for frame, rgb in read_frames(segment_frames(Path(work.path), work.segment_no)):
        at = (frame.captured_at - work.started_at).total_seconds()
        yield Sample(frame.k, at, rgb, None if rgb is not None else f"cannot decode the spooled frame {frame.path}")


def analyse_samples(analyzer: Analyzer, work: SegmentWork, batch_size: int) -> Iterator[tuple[int, float, ImageResult]]:
    """(sample number, timestamp, outcome) for each sample of `work`, in order."""
    samples = _samples(work)
    for chunk in chunked(samples, batch_size):
        readable = [s for s in chunk if s.rgb is not None]
        results = iter(analyzer.analyze_frames([s.rgb for s in readable if s.rgb is not None], work.path))
        for sample in chunk:
            if sample.rgb is None:
                yield sample.k, sample.timestamp_s, ImageResult(work.path, sample.error)
            else:
                yield sample.k, sample.timestamp_s, next(results)


def process_segment(message: SegmentMessage) -> SegmentSummary:
    """Analyse one segment of a video and store each of its sampled frames."""
    started = time.perf_counter()
    settings = runtime.settings()
    sessions = make_session_factory(settings.database_url)
    summary = SegmentSummary(message.job_id, message.video_id, message.segment_no)
    with sessions() as session:
        work = claim_segment(session, message.video_id, message.segment_no, settings.max_attempts)
    if work is None:
        return summary
    with sessions() as session:
        detector = session.scalar(select(Job.detector).where(Job.id == message.job_id))
    analyzer = runtime.analyzer(message.backend, detector)
    version = analyzer.classifier.model_version
    error = None
    try:
        frames = list(analyse_samples(analyzer, work, message.batch_size))
    except (OperationalError, SoftTimeLimitExceeded):
        raise  # retried by the task (worker.tasks)
    except Exception as exc:  # noqa: BLE001  (recorded against the segment, never lost)
        logger.exception("job %s video %s segment %s failed", message.job_id, message.video_id, message.segment_no)
        error = f"segment error {type(exc).__name__}: {exc}"[:500]
        frames = [(k, t, ImageResult(work.path, error)) for k, t in zip(work.samples, work.times, strict=True)]
    with sessions() as session:
        summary.written = store_segment(
            session, work, frames, message.backend, version, error, analyzer.detector_version
        )
    if work.live:  # stored (by this delivery or an earlier one): the spooled frames may go
        release_segment(Path(work.path), work.segment_no)
    summary.frames = len(frames)
    summary.faces = sum(len(r.faces) for _, _, r in frames)
    summary.failed_frames = sum(r.error is not None for _, _, r in frames)
    summary.seconds = round(time.perf_counter() - started, 3)
    logger.info("job %s video %s segment %s: %s", message.job_id, message.video_id, message.segment_no, summary)
    return summary
