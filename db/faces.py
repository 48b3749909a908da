"""Reads of face rows for pictures: the clearest faces per emotion (report thumbnails)
and each image's faces (annotated copies)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, case, func, select
from sqlalchemy.orm import Session

from db.members import in_job, one_of_job
from db.schema import Face, Image, ImageStatus, face_owner
from emotion_batch.labels import EMOTIONS


@dataclass(frozen=True)
class FaceRow:
    """One stored face: its image, box (original pixels), dominant emotion and its percent."""

    image_id: int
    path: str
    x: int
    y: int
    w: int
    h: int
    dominant: str
    percent: float


def dominant_percent() -> ColumnElement:
    """The percentage of a face's dominant emotion, as a SQL expression."""
    return case(*((Face.dominant == e, getattr(Face, e)) for e in EMOTIONS), else_=0.0)


def _row(r) -> FaceRow:  # noqa: ANN001 (a SQLAlchemy Row)
    return FaceRow(r.image_id, r.path, r.x, r.y, r.w, r.h, r.dominant, float(r.percent))


def top_faces(session: Session, job_id: int, per_emotion: int = 4) -> list[FaceRow]:
    """Up to `per_emotion` faces per dominant emotion, the most certain first."""
    percent = dominant_percent().label("percent")
    rank = func.row_number().over(partition_by=Face.dominant, order_by=(percent.desc(), Face.id)).label("rank")
    ranked = (
        select(Image.id.label("image_id"), Image.path, Face.x, Face.y, Face.w, Face.h, Face.dominant, percent, rank)
        .join(Image, Face.image_id == face_owner())
        .where(in_job(job_id))
        .subquery()
    )
    query = select(ranked).where(ranked.c.rank <= per_emotion).order_by(ranked.c.dominant, ranked.c.rank)
    return [_row(r) for r in session.execute(query)]


def faces_per_image(session: Session, job_id: int, limit: int | None = None) -> Iterator[tuple[str, list[FaceRow]]]:
    """(path, faces) of the job's images that have faces, in image id order."""
    image_ids = (
        select(Image.id)
        .where(in_job(job_id), Image.status == ImageStatus.DONE.value, Image.face_count > 0)
        .order_by(Image.id)
        .limit(limit)
        .scalar_subquery()
        if limit
        else None
    )
    query = _face_rows_query().where(in_job(job_id)).order_by(Image.id, Face.face_index)
    if image_ids is not None:
        query = query.where(Image.id.in_(image_ids))
    current: list[FaceRow] = []
    for row in map(_row, session.execute(query)):
        if current and current[0].image_id != row.image_id:
            yield current[0].path, current
            current = []
        current.append(row)
    if current:
        yield current[0].path, current


@dataclass(frozen=True)
class FacePage:
    """One page of a job's faces (most certain first) and how many match in all."""

    total: int
    faces: list[dict]


def _face_filter(job_id: int, emotion: str | None, min_percent: float) -> list[ColumnElement]:
    where = [in_job(job_id)]
    if emotion:
        where.append(Face.dominant == emotion)
    if min_percent > 0:
        where.append(dominant_percent() >= min_percent)
    return where


def face_page(
    session: Session,
    job_id: int,
    emotion: str | None = None,
    min_percent: float = 0.0,
    offset: int = 0,
    limit: int = 48,
) -> FacePage:
    """A job's faces filtered by dominant emotion and its minimum percent, paged in SQL."""
    where = _face_filter(job_id, emotion, min_percent)
    total = session.scalar(select(func.count(Face.id)).join(Image, Face.image_id == face_owner()).where(*where))
    percent = dominant_percent().label("percent")
    # Sort narrow rows (id, percent) and join the page's 48 full rows afterwards: a deep
    # page of a large job then sorts a few bytes per face, not whole face rows.
    page = (
        select(Face.id.label("id"), Image.id.label("image_id"), Image.path.label("path"), percent)
        .join(Image, Face.image_id == face_owner())
        .where(*where)
        .order_by(percent.desc(), Face.id)
        .offset(offset)
        .limit(limit)
        .subquery()
    )
    query = (
        select(Face, page.c.image_id, page.c.path, page.c.percent)
        .join(page, page.c.id == Face.id)
        .order_by(page.c.percent.desc(), Face.id)
    )
    faces = [_face_dict(face, image_id, path, pct) for face, image_id, path, pct in session.execute(query)]
    return FacePage(int(total or 0), faces)


def _face_dict(face: Face, image_id: int, path: str, percent: float) -> dict:
    return {
        "id": face.id,
        "image_id": image_id,  # the job's image (a reused result's faces belong to its source)
        "face_index": face.face_index,
        "path": path,
        "box": {"x": face.x, "y": face.y, "w": face.w, "h": face.h},
        "confidence": face.confidence,
        "dominant": face.dominant,
        "percent": float(percent),
        "emotion": {e: getattr(face, e) for e in EMOTIONS},
        "backend": face.backend,
        "model_version": face.model_version,
    }


def _face_rows_query() -> Select:
    """A face with its image's path, box, dominant emotion and that emotion's percent
    (`Image`: the image showing it, its own faces or the ones it reuses)."""
    return select(
        Image.id.label("image_id"),
        Image.path,
        Face.x,
        Face.y,
        Face.w,
        Face.h,
        Face.dominant,
        dominant_percent().label("percent"),
    ).join(Image, Face.image_id == face_owner())


def image_faces(session: Session, job_id: int, image_id: int) -> tuple[Image, list[FaceRow]] | None:
    """One image of a job and its faces (None when the image is not in that job)."""
    image = session.scalar(select(Image).where(Image.id == image_id, one_of_job(job_id)))
    if image is None:
        return None
    query = _face_rows_query().where(Image.id == image_id).order_by(Face.face_index)
    return image, [_row(r) for r in session.execute(query)]


def job_face(session: Session, job_id: int, face_id: int) -> FaceRow | None:
    """One face of a job (None when the face is not in that job)."""
    query = _face_rows_query().where(Face.id == face_id, one_of_job(job_id)).order_by(Image.id)
    row = session.execute(query).first()
    return _row(row) if row else None
