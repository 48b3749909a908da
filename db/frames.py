"""A job's images and faces as pandas DataFrames, for notebooks.

from db.frames import load_job_frames
frames = load_job_frames("postgresql://emotion:PASS@db-host/emotion", 12)
frames.faces.groupby("folder")["dominant"].value_counts(normalize=True)
"""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd
from sqlalchemy import Integer, Select, literal, select
from sqlalchemy.orm import Session

from db.members import in_job
from db.reports import image_date
from db.schema import Face, Image, face_owner
from db.session import make_session_factory
from emotion_batch.labels import EMOTIONS


class JobFrames(NamedTuple):
    """`images`: one row per image; `faces`: one row per face with its image's path,
    folder and date. `date` is the capture date, else the file's modification date."""

    images: pd.DataFrame
    faces: pd.DataFrame


IMAGE_COLUMNS = (
    "id",
    "job_id",
    "path",
    "folder",
    "sha256",
    "size_bytes",
    "status",
    "error",
    "attempts",
    "width",
    "height",
    "face_count",
    "taken_at",
    "file_mtime",
    "backend",
    "model_version",
    "detector",
    "reused_from",
    "processed_at",
)
FACE_COLUMNS = (
    "id",
    "image_id",
    "face_index",
    "x",
    "y",
    "w",
    "h",
    "confidence",
    *EMOTIONS,
    "dominant",
    "backend",
    "model_version",
    "detector",
)


def images_query(job_id: int) -> Select:
    """The job's images (its own and the ones it shares, `job_id` the job asked for), in
    id order, with their report date."""
    columns = [literal(job_id, Integer).label(c) if c == "job_id" else getattr(Image, c) for c in IMAGE_COLUMNS]
    return select(*columns, image_date().label("date")).where(in_job(job_id)).order_by(Image.id)


def faces_query(job_id: int) -> Select:
    """The job's faces, in (image, face index) order, with their image's path, folder, date."""
    columns = [Image.id.label("image_id") if c == "image_id" else getattr(Face, c) for c in FACE_COLUMNS]
    return (
        select(*columns, Image.path, Image.folder, image_date().label("date"))
        .join(Image, Face.image_id == face_owner())
        .where(in_job(job_id))
        .order_by(Image.id, Face.face_index)
    )


def _frame(session: Session, query: Select) -> pd.DataFrame:
    result = session.execute(query)
    frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    frame["date"] = pd.to_datetime(frame["date"].astype("string"), errors="coerce")
    return frame


def job_frames(session: Session, job_id: int) -> JobFrames:
    """Images and faces of `job_id` as DataFrames (empty frames for an unknown job)."""
    return JobFrames(_frame(session, images_query(job_id)), _frame(session, faces_query(job_id)))


def load_job_frames(database_url: str, job_id: int) -> JobFrames:
    """`job_frames` on a database URL (SQLite path or postgresql://...)."""
    with make_session_factory(database_url)() as session:
        return job_frames(session, job_id)
