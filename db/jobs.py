"""Jobs: create, fetch, finish, progress, list; their pending and failed images.
Registering the images is db.registration."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db.schema import Image, ImageStatus, Job, JobCounts, utcnow
from db.session import checkpoint, rows_changed
from emotion_batch.errors import JobNotFoundError
from emotion_batch.messages import ImageRef
from emotion_batch.paths import storable


def create_job(
    session: Session,
    name: str,
    backend: str,
    batch_size: int,
    roots: Sequence[str],
    force: bool,
    scanning: bool = False,
    detector: str | None = None,
) -> Job:
    """Record a new job (committed, so its id is visible to workers). With `scanning`, the
    job is marked as still being scanned until `finish_scan` (resume completes it);
    `detector` overrides the workers' DETECTOR for this job (None: theirs)."""
    job = Job(
        name=name,
        backend=backend,
        detector=detector,
        batch_size=batch_size,
        roots=json.dumps(list(roots)),
        force=force,
        scan_complete=not scanning,
    )
    session.add(job)
    session.commit()
    checkpoint(session)
    return job


def get_job(session: Session, job_id: int) -> Job:
    """The job `job_id`; `JobNotFoundError` when there is none."""
    job = session.get(Job, job_id)
    if job is None:
        raise JobNotFoundError(job_id)
    return job


def finish_scan(session: Session, job_id: int) -> None:
    """Record that every file under the job's roots has been registered (and copy
    SQLite's log into the database: a job's boundary never lives only in the log)."""
    session.execute(update(Job).where(Job.id == job_id).values(scan_complete=True, scan_error=None))
    session.commit()
    checkpoint(session)


def record_scan_error(session: Session, job_id: int, reason: str) -> None:
    """Record why a job's scan stopped before its end (`resume` finishes it and clears this)."""
    session.execute(update(Job).where(Job.id == job_id).values(scan_error=storable(reason)))
    session.commit()


def pending_refs(session: Session, job_id: int, after: int = 0, limit: int | None = None) -> list[ImageRef]:
    """The job's images still waiting for an outcome, in id order (from id `after` on)."""
    query = (
        select(Image.id, Image.path)
        .where(Image.job_id == job_id, Image.status == ImageStatus.PENDING.value, Image.id > after)
        .order_by(Image.id)
    )
    rows = session.execute(query if limit is None else query.limit(limit))
    return [ImageRef(image_id, path) for image_id, path in rows]


def pending_pages(sessions, job_id: int, page: int = 2000) -> Iterator[list[ImageRef]]:
    """The job's pending images, `page` at a time (keyset by id: flat memory, short reads)."""
    after = 0
    while True:
        with sessions() as session:
            refs = pending_refs(session, job_id, after, page)
        if not refs:
            return
        yield refs
        after = refs[-1].image_id


def reset_failed(session: Session, job_id: int) -> int:
    """Put a job's failed images back to pending (attempts cleared); return how many."""
    result = session.execute(
        update(Image)
        .where(Image.job_id == job_id, Image.status == ImageStatus.FAILED.value)
        .values(
            status=ImageStatus.PENDING.value,
            error=None,
            attempts=0,
            processed_at=None,
            claimed_by=None,
            lease_until=None,
        )
    )
    session.commit()
    return rows_changed(result)


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
    scan_complete: bool = True  # False while (or after an interrupted) submit is still scanning
    scan_error: str | None = None  # why a background scan stopped before its end

    @property
    def finished(self) -> int:
        return self.total - self.pending

    @property
    def complete(self) -> bool:
        return self.pending == 0 and self.scan_complete

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
    """Counts per status, faces found and timing of one job, in constant time: the
    counters the database's triggers keep (`job_counts`) and two index look-ups."""
    counts = session.get(JobCounts, job_id, populate_existing=True) or JobCounts(
        pending=0, done=0, no_face=0, failed=0, faces=0
    )
    job = session.execute(select(Job.created_at, Job.scan_complete, Job.scan_error).where(Job.id == job_id)).first()
    created, scan_complete, scan_error = job if job else (None, True, None)
    last = session.scalar(select(func.max(Image.processed_at)).where(Image.job_id == job_id))
    total = counts.pending + counts.done + counts.no_face + counts.failed
    return Progress(
        job_id,
        total,
        counts.pending,
        counts.done,
        counts.no_face,
        counts.failed,
        counts.faces,
        created,
        last,
        bool(scan_complete),
        scan_error,
    )


def failed_images(session: Session, job_id: int, limit: int = 20) -> list[tuple[str, str]]:
    """(path, reason) of a job's failed images, first `limit` by id."""
    rows = session.execute(
        select(Image.path, Image.error)
        .where(Image.job_id == job_id, Image.status == ImageStatus.FAILED.value)
        .order_by(Image.id)
        .limit(limit)
    )
    return [(path, error or "") for path, error in rows]


def list_jobs(session: Session, offset: int = 0, limit: int = 50) -> tuple[int, list[dict]]:
    """(number of jobs, one page of them newest first, each with its counts per status
    from the trigger-kept `job_counts`: constant time per job whatever its size)."""
    total = session.scalar(select(func.count(Job.id))) or 0
    rows = session.execute(
        select(Job, JobCounts)
        .outerjoin(JobCounts, JobCounts.job_id == Job.id)
        .order_by(Job.id.desc())
        .offset(offset)
        .limit(limit)
    ).all()
    page = []
    for job, counts in rows:
        by_status = {s.value: int(getattr(counts, s.value) or 0) if counts else 0 for s in ImageStatus}
        page.append(
            {
                "id": job.id,
                "name": job.name,
                "backend": job.backend,
                "created_at": job.created_at,
                "scan_complete": bool(job.scan_complete),
                "images": sum(by_status.values()),
                "faces": int(counts.faces or 0) if counts else 0,
                **by_status,
            }
        )
    return int(total), page
