"""Producer-side writes and reads: jobs, image registration, pending work, progress."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from db.schema import Face, Image, ImageStatus, Job, utcnow
from emotion_batch.messages import ImageRef
from emotion_batch.scan import ScannedFile

INSERT_CHUNK = 500


def create_job(
    session: Session, name: str, backend: str, batch_size: int, roots: Sequence[str], force: bool
) -> Job:
    """Record a new job (committed, so its id is visible to workers)."""
    job = Job(name=name, backend=backend, batch_size=batch_size, roots=json.dumps(list(roots)), force=force)
    session.add(job)
    session.commit()
    return job


def _image_row(job_id: int, scanned: ScannedFile) -> dict:
    failed = scanned.error is not None
    return {
        "job_id": job_id,
        "path": scanned.path,
        "folder": scanned.folder,
        "sha256": scanned.sha256,
        "size_bytes": scanned.size,
        "file_mtime": scanned.mtime,
        "status": ImageStatus.FAILED.value if failed else ImageStatus.PENDING.value,
        "error": scanned.error,
        "processed_at": utcnow() if failed else None,
    }


def register_images(session: Session, job: Job, files: Iterable[ScannedFile]) -> tuple[int, int]:
    """Insert a job's images, one row per distinct content; return (registered, duplicates)."""
    seen: set[str] = set()
    rows: list[dict] = []
    duplicates = 0
    for scanned in files:
        if scanned.sha256 in seen:
            duplicates += 1
            continue
        seen.add(scanned.sha256)
        rows.append(_image_row(job.id, scanned))
    for start in range(0, len(rows), INSERT_CHUNK):
        session.execute(insert(Image), rows[start : start + INSERT_CHUNK])
    job.duplicates = duplicates
    session.commit()
    return len(rows), duplicates


def pending_refs(session: Session, job_id: int) -> list[ImageRef]:
    """The job's images still waiting for an outcome, in id order."""
    rows = session.execute(
        select(Image.id, Image.path)
        .where(Image.job_id == job_id, Image.status == ImageStatus.PENDING.value)
        .order_by(Image.id)
    )
    return [ImageRef(image_id, path) for image_id, path in rows]


def reset_failed(session: Session, job_id: int) -> int:
    """Put a job's failed images back to pending (attempts cleared); return how many."""
    result = session.execute(
        update(Image)
        .where(Image.job_id == job_id, Image.status == ImageStatus.FAILED.value)
        .values(status=ImageStatus.PENDING.value, error=None, attempts=0, processed_at=None)
    )
    session.commit()
    return result.rowcount


def latest_job_id(session: Session) -> int | None:
    """The newest job's id, or None when there is none."""
    return session.scalar(select(func.max(Job.id)))


@dataclass(frozen=True)
class Progress:
    """Where a job stands, computed from the database."""

    job_id: int
    total: int
    pending: int
    done: int
    no_face: int
    failed: int
    faces: int
    started: datetime | None
    last_processed: datetime | None

    @property
    def finished(self) -> int:
        return self.total - self.pending

    @property
    def complete(self) -> bool:
        return self.pending == 0

    @property
    def rate(self) -> float:
        """Images finished per second since the job was created."""
        if not self.started or not self.last_processed or self.finished == 0:
            return 0.0
        seconds = (_aware(self.last_processed) - _aware(self.started)).total_seconds()
        return self.finished / seconds if seconds > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        return self.pending / self.rate if self.rate > 0 else None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)


def job_progress(session: Session, job_id: int) -> Progress:
    """Counts per status, faces found and timing of one job."""
    counts = dict(
        session.execute(
            select(Image.status, func.count()).where(Image.job_id == job_id).group_by(Image.status)
        ).all()
    )
    faces = session.scalar(
        select(func.count(Face.id)).join(Image).where(Image.job_id == job_id)
    )
    created = session.scalar(select(Job.created_at).where(Job.id == job_id))
    last = session.scalar(select(func.max(Image.processed_at)).where(Image.job_id == job_id))
    get = lambda s: int(counts.get(s.value, 0))  # noqa: E731
    total = sum(int(v) for v in counts.values())
    return Progress(
        job_id, total, get(ImageStatus.PENDING), get(ImageStatus.DONE), get(ImageStatus.NO_FACE),
        get(ImageStatus.FAILED), int(faces or 0), created, last,
    )


def failed_images(session: Session, job_id: int, limit: int = 20) -> list[tuple[str, str]]:
    """(path, reason) of a job's failed images, first `limit` by id."""
    rows = session.execute(
        select(Image.path, Image.error)
        .where(Image.job_id == job_id, Image.status == ImageStatus.FAILED.value)
        .order_by(Image.id).limit(limit)
    )
    return [(path, error or "") for path, error in rows]
