"""Writes and reads for videos: registration with their segments, segment claims,
storing a segment's frames, and a video's final status.

Like images, every write is guarded by `status = 'pending'` (segments) and a unique
(video_id, frame_no), so a redelivered segment never adds a second outcome to a frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import exists, func, insert, select, update
from sqlalchemy.orm import Session

from db.records import ScannedFile
from db.results import face_values
from db.schema import utcnow
from db.session import rows_changed
from db.video_schema import Frame, FrameFace, Video, VideoSegment
from emotion_batch.pipeline import FaceResult, ImageResult
from emotion_batch.spool import segment_frames
from emotion_batch.video import VideoInfo, expected_samples

PENDING, DONE, FAILED, NO_FACE = "pending", "done", "failed", "no_face"


@dataclass(frozen=True)
class ProbedVideo:
    """A scanned video file and what probing found: its content, or why it is unusable."""

    file: ScannedFile
    info: VideoInfo | None
    error: str | None = None


def segment_bounds(duration_s: float, segment_s: float) -> list[tuple[float, float]]:
    """[start, end) of each segment of a video of `duration_s` seconds."""
    count = max(1, math.ceil(duration_s / segment_s - 1e-9))
    return [(i * segment_s, min(duration_s, (i + 1) * segment_s)) for i in range(count)]


def register_videos(
    session: Session, job_id: int, videos: Iterable[ProbedVideo], fps: float, segment_s: float
) -> tuple[int, int]:
    """Insert a job's videos (one per distinct content) and their segments.

    A video that could not be probed is recorded as failed with its reason and has no
    segment. Returns (registered, duplicates).
    """
    seen: set[str] = set()
    registered = duplicates = 0
    for probed in videos:
        scanned, info = probed.file, probed.info
        if scanned.sha256 in seen:
            duplicates += 1
            continue
        seen.add(scanned.sha256)
        error = scanned.error or probed.error
        video = Video(
            job_id=job_id,
            path=scanned.path,
            folder=scanned.folder,
            sha256=scanned.sha256,
            size_bytes=scanned.size,
            file_mtime=scanned.mtime,
            sample_fps=fps,
            status=FAILED if error or info is None else PENDING,
            error=error,
            processed_at=utcnow() if error or info is None else None,
        )
        if info is not None and error is None:
            video.width, video.height, video.native_fps = info.width, info.height, info.native_fps
            video.native_frames, video.duration_s = info.frames, info.duration_s
            video.claimed_s, video.note = info.claimed_s, info.note
            video.samples = len(expected_samples(info.frames, info.native_fps, fps, 0.0, info.duration_s))
            video.segments = [
                VideoSegment(segment_no=i, start_s=start, end_s=end)
                for i, (start, end) in enumerate(segment_bounds(info.duration_s, segment_s))
            ]
        session.add(video)
        registered += 1
    session.commit()
    return registered, duplicates


def pending_segments(session: Session, job_id: int) -> list[tuple[int, int]]:
    """(video_id, segment_no) of a job's segments still waiting, in order."""
    rows = session.execute(
        select(VideoSegment.video_id, VideoSegment.segment_no)
        .join(Video, Video.id == VideoSegment.video_id)
        .where(Video.job_id == job_id, VideoSegment.status == PENDING)
        .order_by(VideoSegment.video_id, VideoSegment.segment_no)
    )
    return [(v, s) for v, s in rows]


def pending_segment_count(session: Session, job_id: int) -> int:
    """How many of a job's segments have no outcome yet."""
    return int(
        session.scalar(
            select(func.count(VideoSegment.id))
            .join(Video, Video.id == VideoSegment.video_id)
            .where(Video.job_id == job_id, VideoSegment.status == PENDING)
        )
        or 0
    )


@dataclass(frozen=True)
class SegmentWork:
    """A claimed segment: where to read and which samples it owes."""

    segment_id: int
    video_id: int
    segment_no: int
    path: str
    sample_fps: float
    native_fps: float
    samples: list[int]
    times: list[float]  # each sample's seconds since the start (a file's: its nominal time)
    started_at: datetime | None = None  # a live source's wall-clock start (its spool is `path`)

    @property
    def live(self) -> bool:
        return self.started_at is not None


def _work(segment: VideoSegment, video: Video) -> SegmentWork:
    """What a segment owes, and each sample's seconds since the start: a file's samples
    follow from its time range; a live source's are the frames in its spool."""
    if video.source is not None:
        frames = segment_frames(Path(video.path), segment.segment_no)
        started = _aware(video.file_mtime or utcnow())
        times = [(f.captured_at - started).total_seconds() for f in frames]
        samples = [f.k for f in frames]
        return SegmentWork(
            segment.id, video.id, segment.segment_no, video.path, video.sample_fps, 1.0, samples, times, started
        )
    samples = expected_samples(
        video.native_frames or 0, video.native_fps or 1.0, video.sample_fps, segment.start_s, segment.end_s
    )
    native = video.native_fps or 1.0
    times = [k / video.sample_fps for k in samples]
    return SegmentWork(segment.id, video.id, segment.segment_no, video.path, video.sample_fps, native, samples, times)


def _aware(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes: they were stored as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def claim_segment(session: Session, video_id: int, segment_no: int, max_attempts: int) -> SegmentWork | None:
    """Count one more delivery of a pending segment (committed before any work).

    Returns None when the segment already has an outcome, or when it used up its
    attempts: then it and each of its frames are recorded as failed.
    """
    row = session.execute(
        select(VideoSegment, Video)
        .join(Video, Video.id == VideoSegment.video_id)
        .where(VideoSegment.video_id == video_id, VideoSegment.segment_no == segment_no)
    ).first()
    if row is None or row.VideoSegment.status != PENDING:
        return None
    segment, video = row.VideoSegment, row.Video
    work = _work(segment, video)
    if segment.attempts >= max_attempts:
        reason = f"gave up after {max_attempts} attempts (worker killed or timed out each time)"
        failed = [(k, t, ImageResult(video.path, reason)) for k, t in zip(work.samples, work.times, strict=True)]
        store_segment(session, work, failed, backend="", version="", error=reason)
        return None
    session.execute(
        update(VideoSegment)
        .where(VideoSegment.id == segment.id, VideoSegment.status == PENDING)
        .values(attempts=VideoSegment.attempts + 1)
    )
    session.commit()
    return work


def _frame_status(result: ImageResult) -> str:
    return FAILED if result.error else (DONE if result.faces else NO_FACE)


def store_segment(
    session: Session,
    work: SegmentWork,
    frames: Sequence[tuple[int, float, ImageResult]],
    backend: str,
    version: str,
    error: str | None = None,
    detector: str | None = None,
) -> int:
    """Write a segment's frames and faces and mark it finished, in one transaction.

    Returns the frames written: 0 when another delivery already stored the segment.
    """
    status = FAILED if error else DONE
    marked = rows_changed(
        session.execute(
            update(VideoSegment)
            .where(VideoSegment.id == work.segment_id, VideoSegment.status == PENDING)
            .values(status=status, error=error, processed_at=utcnow())
        )
    )
    if marked != 1:
        session.rollback()
        return 0
    now = utcnow()
    rows = [
        {
            "video_id": work.video_id,
            "segment_no": work.segment_no,
            "frame_no": k,
            "timestamp_s": ts,
            "captured_at": work.started_at + timedelta(seconds=ts) if work.started_at else None,
            "status": _frame_status(r),
            "error": r.error,
            "face_count": len(r.faces),
            "backend": backend,
            "model_version": version,
            "detector": detector,
            "processed_at": now,
        }
        for k, ts, r in frames
    ]
    if rows:
        session.execute(insert(Frame), rows)
        ids = dict(
            session.execute(
                select(Frame.frame_no, Frame.id).where(
                    Frame.video_id == work.video_id, Frame.frame_no.in_([k for k, _, _ in frames])
                )
            ).all()
        )
        faces = [_face_row(ids[k], i, face) for k, _, r in frames for i, face in enumerate(r.faces)]
        if faces:
            session.execute(insert(FrameFace), faces)
    session.commit()
    finish_video(session, work.video_id)
    return len(rows)


def _face_row(frame_id: int, index: int, face: FaceResult) -> dict:
    return {"frame_id": frame_id, **face_values(face, index)}


def finish_video(session: Session, video_id: int) -> bool:
    """Give a video its outcome once no segment is pending (after the segment's commit,
    so of two workers finishing the last two segments, the later one sees both)."""
    open_segments = exists().where(VideoSegment.video_id == video_id, VideoSegment.status == PENDING)
    any_done = exists().where(VideoSegment.video_id == video_id, VideoSegment.status == DONE)
    done = rows_changed(
        session.execute(
            update(Video)
            .where(Video.id == video_id, Video.status == PENDING, ~open_segments, any_done)
            .values(status=DONE, processed_at=utcnow())
        )
    )
    failed = rows_changed(
        session.execute(
            update(Video)
            .where(Video.id == video_id, Video.status == PENDING, ~open_segments)
            .values(status=FAILED, processed_at=utcnow(), error="no segment could be analysed")
        )
    )
    session.commit()
    return bool(done or failed)


def reset_failed_segments(session: Session, job_id: int) -> int:
    """Failed segments of a job back to pending (their failed frames removed)."""
    video_ids = select(Video.id).where(Video.job_id == job_id)
    failed = session.execute(
        select(VideoSegment.id, VideoSegment.video_id, VideoSegment.segment_no).where(
            VideoSegment.video_id.in_(video_ids), VideoSegment.status == FAILED
        )
    ).all()
    for _, video_id, segment_no in failed:
        session.query(Frame).filter(Frame.video_id == video_id, Frame.segment_no == segment_no).delete()
    if failed:
        session.execute(
            update(VideoSegment)
            .where(VideoSegment.id.in_([f.id for f in failed]))
            .values(status=PENDING, error=None, attempts=0, processed_at=None)
        )
        session.execute(
            update(Video)
            .where(Video.id.in_({f.video_id for f in failed}))
            .values(status=PENDING, error=None, processed_at=None)
        )
    session.commit()
    return len(failed)
