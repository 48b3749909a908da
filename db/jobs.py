"""Producer-side writes and reads: jobs, image registration, pending work, progress."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, cast

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.orm import Session

from db.schema import Image, ImageStatus, Job, JobCounts, utcnow
from db.session import rows_changed
from emotion_batch.messages import ImageRef
from emotion_batch.paths import to_db
from emotion_batch.scan import Candidate, ScannedFile

if TYPE_CHECKING:
    from db.results import ResultKey

INSERT_CHUNK = 500


def create_job(
    session: Session,
    name: str,
    backend: str,
    batch_size: int,
    roots: Sequence[str],
    force: bool,
    scanning: bool = False,
) -> Job:
    """Record a new job (committed, so its id is visible to workers). With `scanning`, the
    job is marked as still being scanned until `finish_scan` (resume completes it)."""
    job = Job(
        name=name,
        backend=backend,
        batch_size=batch_size,
        roots=json.dumps(list(roots)),
        force=force,
        scan_complete=not scanning,
    )
    session.add(job)
    session.commit()
    return job


def finish_scan(session: Session, job_id: int) -> None:
    """Record that every file under the job's roots has been registered."""
    session.execute(update(Job).where(Job.id == job_id).values(scan_complete=True))
    session.commit()


def _image_row(job_id: int, scanned: ScannedFile) -> dict:
    failed = scanned.error is not None
    return {
        "job_id": job_id,
        "path": to_db(scanned.path),
        "folder": to_db(scanned.folder),
        "sha256": scanned.sha256,
        "size_bytes": scanned.size,
        "file_mtime": scanned.mtime,
        "status": ImageStatus.FAILED.value if failed else ImageStatus.PENDING.value,
        "error": scanned.error,
        "processed_at": utcnow() if failed else None,
        # every key, so the rows of one executemany agree (a reused result fills them)
        "width": None,
        "height": None,
        "taken_at": None,
        "face_count": 0,
        "backend": None,
        "model_version": None,
        "detector": None,
        "reused_from": None,
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


def _naive_utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def known_hashes(session: Session, found: Sequence[Candidate]) -> dict[str, str]:
    """{path: sha256} for files whose path, size and modification time match an image
    already registered with a real content hash (so re-runs need not read them again).
    Images failed at scan time (never delivered) carry a path key, not a hash: skipped."""
    by_path = {to_db(c.path): c for c in found}
    if not by_path:
        return {}
    rows = session.execute(
        select(Image.path, Image.size_bytes, Image.file_mtime, Image.sha256)
        .where(Image.path.in_(list(by_path)))
        .where(~((Image.status == ImageStatus.FAILED.value) & (Image.attempts == 0)))
    )
    known: dict[str, str] = {}
    for path, size, mtime, sha256 in rows:
        candidate = by_path[path]
        if size == candidate.size and _naive_utc(mtime) == _naive_utc(candidate.mtime):
            known[candidate.path] = sha256
    return known


@dataclass(frozen=True)
class Registered:
    """What one registered chunk added to a job."""

    pending: list[ImageRef]  # to enqueue
    reused: int  # finished at once with an earlier result
    failed: int  # failed at scan time (unreadable, too large)
    duplicates: int


def _reused_row(row: dict, source: Image) -> dict:
    return row | {
        "status": source.status,
        "error": None,
        "width": source.width,
        "height": source.height,
        "taken_at": source.taken_at,
        "face_count": source.face_count,
        "backend": source.backend,
        "model_version": source.model_version,
        "detector": source.detector,
        "reused_from": source.id,
        "processed_at": utcnow(),
    }


def register_chunk(
    session: Session, job_id: int, files: Sequence[ScannedFile], scanned: int, reuse: ResultKey | None = None
) -> Registered:
    """Insert one chunk of a job's scanned files and commit it with the job's scan count.

    One row per distinct content in the job: a content already in the job is a duplicate,
    unless it is the same path (registered before an interrupted submit was resumed).
    With `reuse`, a content analysed before under that key is registered finished, its
    result shared with the earlier image (`reused_from`), and is not queued.
    """
    first: dict[str, ScannedFile] = {}
    duplicates = 0
    for scanned_file in files:
        if scanned_file.sha256 in first:
            duplicates += 1
        else:
            first[scanned_file.sha256] = scanned_file
    if first:
        existing = session.execute(
            select(Image.sha256, Image.path).where(Image.job_id == job_id, Image.sha256.in_(list(first)))
        ).all()
        for sha256, path in existing:
            if to_db(first.pop(sha256).path) != path:
                duplicates += 1
    sources = {}
    if reuse and first:
        from db.results import reusable  # the worker's rule (imports the pipeline: only when reusing)

        sources = reusable(session, [sha for sha, f in first.items() if f.error is None], reuse)
    rows = []
    for sha256, scanned_file in first.items():
        row = _image_row(job_id, scanned_file)
        rows.append(_reused_row(row, sources[sha256]) if sha256 in sources else row)
    pending: list[ImageRef] = []
    if rows:
        # Core executemany on the table: no ORM bookkeeping per row, and RETURNING would go
        # row by row on SQLite
        session.execute(insert(cast(Table, Image.__table__)), rows)
        pending = [
            ImageRef(i, path)
            for i, path in session.execute(
                select(Image.id, Image.path)
                .where(
                    Image.job_id == job_id,
                    Image.sha256.in_([r["sha256"] for r in rows]),
                    Image.status == ImageStatus.PENDING.value,
                )
                .order_by(Image.id)
            )
        ]
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(scanned=Job.scanned + scanned, duplicates=Job.duplicates + duplicates)
    )
    session.commit()
    failed = sum(1 for r in rows if r["status"] == ImageStatus.FAILED.value and r.get("reused_from") is None)
    return Registered(pending, len(sources), failed, duplicates)


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
    job = session.execute(select(Job.created_at, Job.scan_complete).where(Job.id == job_id)).first()
    created, scan_complete = job if job else (None, True)
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
