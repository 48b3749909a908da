"""Tables: jobs, images, job_images, folder_scans, faces. Documented in docs/schema.md."""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """Timezone-aware now, stored as UTC."""
    return datetime.now(timezone.utc)


class ImageStatus(str, Enum):
    """Every image ends in exactly one of done, no_face or failed."""

    PENDING = "pending"
    DONE = "done"
    NO_FACE = "no_face"
    FAILED = "failed"


FINISHED = (ImageStatus.DONE.value, ImageStatus.NO_FACE.value, ImageStatus.FAILED.value)


class Base(DeclarativeBase):
    pass


class Job(Base):
    """One `producer submit`: a named set of images analysed with one backend."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)  # no length limit (default: the first submitted path)
    backend: Mapped[str] = mapped_column(String(32))
    # `submit --detector`: the detector every worker uses for this job (NULL: their DETECTOR)
    detector: Mapped[str | None] = mapped_column(String(32))
    batch_size: Mapped[int] = mapped_column(Integer)
    force: Mapped[bool] = mapped_column(Boolean, default=False)
    roots: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of submitted paths
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Candidate files the submit has registered so far, and whether its scan finished
    # (`producer resume` completes an interrupted one).
    scanned: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    scan_complete: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    scan_error: Mapped[str | None] = mapped_column(Text)  # why a background scan stopped (resume clears it)
    images: Mapped[list[Image]] = relationship(back_populates="job")


class JobCounts(Base):
    """A job's images per status and faces found, kept by triggers on `images`
    (migration 0002): progress in one primary-key read whatever the job's size."""

    __tablename__ = "job_counts"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    pending: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    done: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    no_face: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    failed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    faces: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Image(Base):
    """One image file of a job and its single outcome."""

    __tablename__ = "images"
    __table_args__ = (
        # every content look-up is led by the hash: one index for all (migration 0009)
        UniqueConstraint("sha256", "job_id", name="uq_images_sha256_job"),
        Index("ix_images_job_processed", "job_id", "processed_at"),
        Index("ix_images_job_status", "job_id", "status", "id"),  # resume's pages, first failures
        Index("ix_images_path", "path"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # job_id is the first column of ix_images_job_processed and ix_images_job_status: no index of its own
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(Text)
    folder: Mapped[str] = mapped_column(Text, index=True)
    sha256: Mapped[str] = mapped_column(String(64))  # of the content analysed (indexed by uq_images_sha256_job)
    # The hash at submit, kept when the worker found the file changed since (else NULL).
    submitted_sha256: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    file_mtime: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default=ImageStatus.PENDING.value)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    taken_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    face_count: Mapped[int] = mapped_column(Integer, default=0)
    backend: Mapped[str | None] = mapped_column(String(32))
    model_version: Mapped[str | None] = mapped_column(String(80))
    detector: Mapped[str | None] = mapped_column(String(80))
    reused_from: Mapped[int | None] = mapped_column(Integer)
    # The Celery task analysing the image right now, until `lease_until` (epoch seconds).
    claimed_by: Mapped[str | None] = mapped_column(Text)
    lease_until: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    job: Mapped[Job] = relationship(back_populates="images")
    faces: Mapped[list[Face]] = relationship(back_populates="image", order_by="Face.face_index")


class JobImage(Base):
    """An image of an earlier job that a job shares as it is, without a row of its own:
    a file unchanged since (same path, size and modification time) whose finished result
    the job reuses. A job's images are its own rows and these (`db.members`)."""

    __tablename__ = "job_images"
    __table_args__ = {"sqlite_with_rowid": False}

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    # no foreign key (as `reused_from`): the image is finished and never deleted, and a
    # key would need an index on image_id that every shared file would pay for
    image_id: Mapped[int] = mapped_column(Integer, primary_key=True)


class FolderScan(Base):
    """A folder a job walked whole and registered file by file: the digest of its listing
    (every file's path, size and modification time; producer.scan.folders). A later walk
    of the folder with the same digest shares that job's rows of it in one statement
    (db.folders), when they are one finished row per file under the result key in use."""

    __tablename__ = "folder_scans"
    __table_args__ = (Index("ix_folder_scans_folder_digest", "folder", "digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    folder: Mapped[str] = mapped_column(Text)  # as images.folder
    files: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))


class FaceColumns:
    """What every stored face has, in a photo or a video frame: its box, the detector's
    confidence, the seven emotion percentages (sum 100) and the dominant one."""

    face_index: Mapped[int] = mapped_column(Integer)
    x: Mapped[int] = mapped_column(Integer)
    y: Mapped[int] = mapped_column(Integer)
    w: Mapped[int] = mapped_column(Integer)
    h: Mapped[int] = mapped_column(Integer)
    confidence: Mapped[float] = mapped_column(Float)
    angry: Mapped[float] = mapped_column(Float)
    disgust: Mapped[float] = mapped_column(Float)
    fear: Mapped[float] = mapped_column(Float)
    happy: Mapped[float] = mapped_column(Float)
    sad: Mapped[float] = mapped_column(Float)
    surprise: Mapped[float] = mapped_column(Float)
    neutral: Mapped[float] = mapped_column(Float)
    dominant: Mapped[str] = mapped_column(String(16), index=True)


class Face(FaceColumns, Base):
    """One face found in an image, with the seven emotion percentages (sum 100)."""

    __tablename__ = "faces"
    __table_args__ = (UniqueConstraint("image_id", "face_index", name="uq_faces_image_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    backend: Mapped[str] = mapped_column(String(32))
    model_version: Mapped[str] = mapped_column(String(80))
    detector: Mapped[str | None] = mapped_column(String(80))
    image: Mapped[Image] = relationship(back_populates="faces")


def face_owner():  # noqa: ANN201 (a SQL expression)
    """The image whose face rows an image shows: its own, or, for a result reused from an
    earlier image (`reused_from`), that image's (shared, not copied). Join faces with
    `Face.image_id == face_owner()`."""
    from sqlalchemy import func

    return func.coalesce(Image.reused_from, Image.id)
