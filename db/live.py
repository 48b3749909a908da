"""Writes for live sources: the source's video row while it is sampled, a segment added
each time the producer hands one on, and the video's end (when and why it stopped).

A live video is `live` until its producer stops sampling: `db.videos.finish_video` only
finishes `pending` videos, so segments stored meanwhile never end it early.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.jobs import finish_scan
from db.video_schema import Video, VideoSegment
from db.videos import PENDING, finish_video

LIVE = "live"


def is_live(session: Session, job_id: int) -> bool:
    """Whether a source of the job is being sampled now."""
    return session.scalar(select(Video.id).where(Video.job_id == job_id, Video.status == LIVE).limit(1)) is not None


def register_live_video(session: Session, job_id: int, source: str, spool: str, fps: float, started: datetime) -> int:
    """Record the live source of `job_id` (status `live`); returns the video id."""
    digest = hashlib.sha256(f"{source}\n{started.isoformat()}".encode()).hexdigest()
    video = Video(
        job_id=job_id,
        path=spool,
        folder=source,
        source=source,
        sha256=digest,
        size_bytes=0,
        file_mtime=started,
        sample_fps=fps,
        status=LIVE,
    )
    session.add(video)
    session.commit()
    return video.id


def add_live_segment(
    session: Session, video_id: int, segment_no: int, start_s: float, end_s: float, frames: int
) -> None:
    """Record a segment the producer is about to hand to the workers (and the frames so far)."""
    session.add(VideoSegment(video_id=video_id, segment_no=segment_no, start_s=start_s, end_s=end_s))
    session.execute(update(Video).where(Video.id == video_id).values(samples=Video.samples + frames, duration_s=end_s))
    session.commit()


def end_live_video(session: Session, video_id: int, seconds: float, note: str) -> None:
    """Sampling stopped: the video waits for its last segments (or is finished now when
    they are all stored, or failed when it had none), and its job's registration ends."""
    session.execute(
        update(Video)
        .where(Video.id == video_id, Video.status == LIVE)
        .values(status=PENDING, duration_s=seconds, note=note)
    )
    session.commit()
    job_id = session.scalar(select(Video.job_id).where(Video.id == video_id))
    if job_id is not None:
        finish_scan(session, job_id)
    finish_video(session, video_id)
