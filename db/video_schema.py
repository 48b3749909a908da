"""Tables for videos: videos, their time segments (one task each), sampled frames and
the faces found in them. Documented in docs/schema.md.

A frame is a first-class result (its video, sample number and timestamp), never a fake
image row, so photo counts and video counts never mix.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.schema import Base, FaceColumns, utcnow


class Video(Base):
    """One video file of a job: what it holds, how it is sampled, its outcome.

    `status`: pending until every segment has an outcome; then done (some frames
    analysed) or failed (`error` says why). `note` says why less than the container
    claimed was analysed. A live source (`source` set: a camera or a stream URL) is
    `live` while it is sampled; its `path` is its spool folder and `file_mtime` the
    wall-clock start; `note` then says when and why it stopped.
    """

    __tablename__ = "videos"
    __table_args__ = (UniqueConstraint("job_id", "sha256", name="uq_videos_job_sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(Text)
    folder: Mapped[str] = mapped_column(Text, index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    file_mtime: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    error: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    native_fps: Mapped[float | None] = mapped_column(Float)
    native_frames: Mapped[int | None] = mapped_column(Integer)  # frames that can be read
    duration_s: Mapped[float | None] = mapped_column(Float)
    claimed_s: Mapped[float | None] = mapped_column(Float)
    sample_fps: Mapped[float] = mapped_column(Float)
    source: Mapped[str | None] = mapped_column(Text)  # a live source's camera or URL (NULL: a file)
    samples: Mapped[int] = mapped_column(Integer, default=0)  # frames to sample in all
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    segments: Mapped[list[VideoSegment]] = relationship(back_populates="video", order_by="VideoSegment.segment_no")


class VideoSegment(Base):
    """A time range of a video, analysed by one task (`job<J>-video<V>-seg<N>`)."""

    __tablename__ = "video_segments"
    __table_args__ = (UniqueConstraint("video_id", "segment_no", name="uq_segments_video_no"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    segment_no: Mapped[int] = mapped_column(Integer)
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    video: Mapped[Video] = relationship(back_populates="segments")


class Frame(Base):
    """One sampled frame: sample number `frame_no` (at `frame_no / sample_fps` s),
    the real `timestamp_s` of the native frame used, and its outcome like an image's."""

    __tablename__ = "frames"
    __table_args__ = (UniqueConstraint("video_id", "frame_no", name="uq_frames_video_no"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    segment_no: Mapped[int] = mapped_column(Integer)
    frame_no: Mapped[int] = mapped_column(Integer)
    timestamp_s: Mapped[float] = mapped_column(Float)
    captured_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # live sources: wall clock
    status: Mapped[str] = mapped_column(String(16), index=True)  # done, no_face, failed
    error: Mapped[str | None] = mapped_column(Text)
    face_count: Mapped[int] = mapped_column(Integer, default=0)
    backend: Mapped[str] = mapped_column(String(32))
    model_version: Mapped[str] = mapped_column(String(80))
    detector: Mapped[str | None] = mapped_column(String(80))  # name + model file hash
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    faces: Mapped[list[FrameFace]] = relationship(back_populates="frame", order_by="FrameFace.face_index")


class FrameFace(FaceColumns, Base):
    """One face in a sampled frame, with the seven emotion percentages (sum 100)."""

    __tablename__ = "frame_faces"
    __table_args__ = (UniqueConstraint("frame_id", "face_index", name="uq_frame_faces_frame_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frames.id", ondelete="CASCADE"), index=True)
    frame: Mapped[Frame] = relationship(back_populates="faces")
