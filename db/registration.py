"""Registering a chunk of scanned files as a job's images, set-based.

The chunk is staged in a temporary table (per connection, emptied for every chunk) so
that registering it is a few set-based statements run in the database's own code:
duplicates, the earlier result to reuse, the pending image of another job to follow and
the new rows are found and written by joins, not row by row in Python; the job's
counters are upserted in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    String,
    Table,
    Text,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from db.folders import record_folders, stage_shared
from db.known import known_hashes
from db.members import one_of_job
from db.records import ScannedFile, ScannedFolder
from db.schema import Image, ImageStatus, Job, JobCounts, JobImage, utcnow
from db.session import rows_changed
from db.stage import fill, staging_table, time_param
from emotion_batch.errors import SharedFolderChangedError
from emotion_batch.messages import ImageRef
from emotion_batch.paths import to_db

if TYPE_CHECKING:
    from db.results import ResultKey

__all__ = ["Registered", "Sources", "known_hashes", "register_chunk"]


@dataclass(frozen=True)
class Registered:
    """What one registered chunk added to a job."""

    pending: list[ImageRef]  # to enqueue
    reused: int  # finished at once with an earlier result
    failed: int  # failed at scan time (unreadable, too large)
    duplicates: int
    following: int = 0  # pending, not queued: another job's pending image of the same content gives its result


# One chunk of scanned files, staged (see the module docstring).
_STAGE = staging_table(
    "register_stage",
    Column("seq", Integer, primary_key=True),  # walk order: the new rows' ids follow it
    Column("path", Text, nullable=False),
    Column("folder", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("file_mtime", DateTime(timezone=True)),
    Column("error", Text),
    Column("source", Integer),  # the earlier image whose result is reused
    Column("shared", Integer),  # the earlier image the job shares as it is (file unchanged)
    Column("whole", Integer),  # 1: a row of a folder shared whole (db.folders)
    Column("follows", Integer),  # a pending image of another job whose result this one will take
)


@dataclass
class Sources:
    """Where the images a submit registered so far came from, as far as duplicates go:
    only folders shared whole from one earlier job (`job`), or anything (`mixed`: files
    one by one, folders of several jobs, an interrupted submit's earlier part). One job's
    images have distinct contents, so while a job shares only whole folders of one
    earlier job, their rows need no look-up for a content already in the job."""

    job: int | None = None
    mixed: bool = False

    def add(self, shares: Sequence[ScannedFolder], files: bool) -> bool:
        """Count a chunk in; True when its shared folders' rows need no duplicate check."""
        jobs = {f.shared_from for f in shares} | ({self.job} if self.job is not None else set())
        unique = not self.mixed and len(jobs) <= 1
        self.mixed = self.mixed or files or len(jobs) > 1
        self.job = self.job if self.job is not None else next(iter(jobs), None)
        return unique


def _staged_rows(
    session: Session, items: Sequence[ScannedFile | ScannedFolder]
) -> tuple[list[tuple], list[tuple[int, ScannedFolder]], int]:
    """The stage's rows of the chunk's first file per content, in walk order, the places
    of the folders it shares whole (their files come from db.folders) and the number of
    files whose content came earlier in the chunk."""
    first: set[str] = set()
    shares: list[tuple[int, ScannedFolder]] = []
    rows: list[tuple] = []
    when = time_param(session)
    duplicates = seq = 0
    for item in items:
        if isinstance(item, ScannedFolder):
            if item.shared_from is not None:
                shares.append((seq, item))
                seq += item.files
            continue
        if item.sha256 in first:
            duplicates += 1
            continue
        first.add(item.sha256)
        path = to_db(item.path)
        rows.append(
            # a shared file's row is not written (only its content, path and image are
            # read): its folder and date-time need not be converted
            (seq, path, "", item.sha256, 0, None, None, None, item.shared, None, None)
            if item.shared is not None
            else (
                (seq, path, to_db(item.folder), item.sha256, item.size, when(item.mtime))
                + (item.error, None, None, None, None)
            )
        )
        seq += 1
    return rows, shares, duplicates


def _stage_shares(
    session: Session, job_id: int, shares: list[tuple[int, ScannedFolder]], reuse: ResultKey | None, ordered: bool
) -> int:
    """Stage the files of the folders shared whole; with `ordered` (other rows or folders
    of other jobs in the chunk), drop a content met twice; return how many were dropped."""
    expected = sum(folder.files for _, folder in shares)
    staged = stage_shared(session, _STAGE, shares, cast("ResultKey", reuse), ordered=ordered)
    if staged != expected:
        raise SharedFolderChangedError(job_id, staged, expected)
    if not ordered:
        return 0
    # a content met twice in the chunk (a folder shared from another job than a file or
    # folder before it): its first place stays
    firsts = select(func.min(_STAGE.c.seq)).group_by(_STAGE.c.sha256)
    return rows_changed(session.execute(delete(_STAGE).where(_STAGE.c.seq.not_in(firsts))))


def _drop_in_job(session: Session, job_id: int, unique: bool) -> int:
    """Drop the staged contents the job already holds (its own rows or shared ones; with
    `unique`, the rows of folders shared whole need no check); return the duplicates
    among them: a content already in the job under another path."""
    stage = _STAGE.c
    earlier = cast(Table, Image.__table__).alias("earlier")
    # First which contents are in the job at all, from the index alone (the job's own
    # (sha256, job_id); a shared image's id from the same index, then job_images' key):
    # no image row is read for the many that are not. Their paths only for the few that are.
    own = exists().where(earlier.c.job_id == job_id, earlier.c.sha256 == stage.sha256)
    # nested, so that it is driven by the content's index (a join was planned from the
    # job's whole job_images, a scan growing with the job)
    member = exists().where(JobImage.job_id == job_id, JobImage.image_id == earlier.c.id)
    shared = exists().where(earlier.c.sha256 == stage.sha256, member)
    checked = [stage.whole.is_(None)] if unique else []
    hits = [seq for (seq,) in session.execute(select(stage.seq).where(or_(own, shared), *checked))]
    if not hits:
        return 0
    in_job = (
        select(earlier.c.path)
        .where(earlier.c.sha256 == stage.sha256, one_of_job(job_id, earlier.c))
        .limit(1)
        .scalar_subquery()
    )
    found = select(stage.seq, stage.path, in_job.label("existing")).where(stage.seq.in_(hits)).subquery()
    known = session.execute(select(found.c.seq, found.c.path, found.c.existing).where(found.c.existing.is_not(None)))
    session.execute(delete(_STAGE).where(stage.seq.in_(hits)))
    return sum(1 for _, path, existing in known if path != existing)


def _stage(
    session: Session,
    job_id: int,
    items: Sequence[ScannedFile | ScannedFolder],
    reuse: ResultKey | None,
    sources: Sources | None,
) -> int:
    """Put the chunk's first file per content into the stage, the files of the folders it
    shares whole (db.folders) among them in walk order, minus the contents already in the
    job; return the duplicates (a content already in the job under another path: the same
    path is a row registered before an interrupted submit was resumed). `sources` (None:
    unknown, anything) spares the look-ups that cannot find anything (see Sources)."""
    rows, shares, duplicates = _staged_rows(session, items)
    fill(session, _STAGE, rows)
    unique = sources.add([f for _, f in shares], bool(rows)) if sources is not None else False
    if shares:
        duplicates += _stage_shares(session, job_id, shares, reuse, ordered=bool(rows) or not unique)
    if not rows and (unique or not shares):
        return duplicates
    return duplicates + _drop_in_job(session, job_id, unique)


def _find_sources(session: Session, reuse: ResultKey) -> None:
    """Each staged content's earliest image analysed under `reuse` (the worker's rule,
    db.results.reusable), in one UPDATE."""
    from db.results import reusable_filter  # the worker's rule (imports the pipeline: only when reusing)

    source = cast(Table, Image.__table__).alias("source")
    earliest = (
        select(func.min(source.c.id))
        .where(source.c.sha256 == _STAGE.c.sha256, *reusable_filter(source.c, reuse))
        .scalar_subquery()
    )
    session.execute(update(_STAGE).where(_STAGE.c.error.is_(None), _STAGE.c.shared.is_(None)).values(source=earliest))


def _find_pending(session: Session, job_id: int, reuse: ResultKey) -> None:
    """Each staged content that has no result to reuse yet but is pending in another job
    of the same backend (an earlier submit of the same photos still running) follows the
    earliest such image (db.followers): it is not queued a second time, and takes that
    image's result when a worker stores it. One correlated look-up per staged row on the
    content index, as `_find_sources` (no join for PostgreSQL to plan as a scan).

    The images followed are then locked against change until this transaction commits
    (FOR SHARE on PostgreSQL; SQLite's registering transactions hold the write lock), so
    a worker finishing one at this moment either did so before (it is no longer pending
    when locked) or does so after the commit and finds the follower. One a worker holds
    right now is skipped (SKIP LOCKED), never waited for: its content is queued anew."""
    same_backend = select(Job.id).where(Job.backend == reuse.backend, Job.id != job_id)
    waiting = select(JobCounts.job_id).where(JobCounts.pending > 0, JobCounts.job_id.in_(same_backend)).limit(1)
    if session.scalar(waiting) is None:
        return  # no other job has anything pending (the counters say so in one look-up)
    stage = _STAGE.c
    images = cast(Table, Image.__table__)
    pending = images.alias("pending")
    earliest = (
        select(func.min(pending.c.id))
        .where(
            pending.c.sha256 == stage.sha256,
            pending.c.status == ImageStatus.PENDING.value,
            pending.c.reused_from.is_(None),
            pending.c.job_id.in_(same_backend),
        )
        .scalar_subquery()
    )
    unresolved = (stage.error.is_(None), stage.shared.is_(None), stage.source.is_(None))
    session.execute(update(_STAGE).where(*unresolved).values(follows=earliest))
    followed = list(session.scalars(select(stage.follows).where(stage.follows.is_not(None))))
    if not followed:
        return
    locked = set(
        session.scalars(
            select(images.c.id)
            .where(images.c.id.in_(followed), images.c.status == ImageStatus.PENDING.value)
            .with_for_update(read=True, skip_locked=True)
        )
    )
    if len(locked) < len(set(followed)):
        session.execute(update(_STAGE).where(stage.follows.in_(set(followed) - locked)).values(follows=None))


def _insert_staged(session: Session, job_id: int) -> list[tuple[int, str, str, int | None]]:
    """One INSERT ... SELECT of the staged files as the job's images: failed at scan time
    with their error, finished with the reused result (`reused_from`), pending and
    following another job's pending image (`reused_from` too, see `_find_pending`), or
    pending; return (id, path, status, reused_from) of each new row in walk order
    (RETURNING: no second look-up of the rows just written)."""
    images, stage = cast(Table, Image.__table__), _STAGE.c
    source = images.alias("source")
    now = utcnow()
    failed, reused = stage.error.is_not(None), source.c.id.is_not(None)
    columns = {
        "job_id": literal(job_id),
        "path": stage.path,
        "folder": stage.folder,
        "sha256": stage.sha256,
        "size_bytes": stage.size_bytes,
        "file_mtime": stage.file_mtime,
        "status": case((failed, ImageStatus.FAILED.value), (reused, source.c.status), else_=ImageStatus.PENDING.value),
        "error": stage.error,
        "attempts": literal(0),
        "width": source.c.width,
        "height": source.c.height,
        "taken_at": source.c.taken_at,
        "face_count": func.coalesce(source.c.face_count, 0),
        "backend": source.c.backend,
        "model_version": source.c.model_version,
        "detector": source.c.detector,
        "reused_from": func.coalesce(source.c.id, stage.follows),
        "created_at": literal(now, DateTime(timezone=True)),
        "processed_at": case((failed | reused, literal(now, DateTime(timezone=True))), else_=None),
    }
    rows = (
        select(*(value.label(name) for name, value in columns.items()))
        .select_from(_STAGE.outerjoin(source, source.c.id == stage.source))
        .where(stage.shared.is_(None))
        .order_by(stage.seq)
    )
    statement = insert(images).from_select(list(columns), rows)
    written = session.execute(statement.returning(images.c.id, images.c.path, images.c.status, images.c.reused_from))
    return sorted(tuple(row) for row in written)  # ids follow the walk order (ORDER BY seq)


def _share_staged(session: Session, job_id: int) -> int:
    """The staged files unchanged since an analysis become the job's by sharing the earlier
    rows (`job_images`), their outcomes added to the job's counters in the same
    transaction (the triggers count only `images` rows); return how many."""
    stage = _STAGE.c
    images = cast(Table, Image.__table__).c
    session.execute(
        insert(JobImage).from_select(
            ["job_id", "image_id"],
            select(literal(job_id), stage.shared).where(stage.shared.is_not(None)).order_by(stage.shared),
        )
    )
    counts: list[ColumnElement] = [func.count(images.id)]
    counts += [func.coalesce(func.sum(case((images.status == s.value, 1), else_=0)), 0) for s in ImageStatus]
    counts.append(func.coalesce(func.sum(images.face_count), 0))
    shared, *by_status, faces = session.execute(
        select(*counts).select_from(_STAGE.join(Image.__table__, images.id == stage.shared))
    ).one()
    if shared:
        _add_counts(session, job_id, dict(zip((s.value for s in ImageStatus), by_status)) | {"faces": faces})
    return int(shared)


def _add_counts(session: Session, job_id: int, deltas: dict[str, int]) -> None:
    """Add `deltas` (per status, faces) to the job's counter row, created when missing."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = session.connection().dialect.name
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = cast(Table, JobCounts.__table__)
    statement = upsert(table).values(job_id=job_id, **deltas)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[table.c.job_id], set_={k: table.c[k] + statement.excluded[k] for k in deltas}
        )
    )


def register_chunk(
    session: Session,
    job_id: int,
    items: Sequence[ScannedFile | ScannedFolder],
    scanned: int,
    reuse: ResultKey | None = None,
    sources: Sources | None = None,
) -> Registered:
    """Insert one chunk of a job's scanned files and commit it with the job's scan count.

    One image per distinct content in the job (its own rows and the ones it shares): a
    content already in the job is a duplicate, unless it is the same path (registered
    before an interrupted submit was resumed). A file unchanged since an analysis
    (`ScannedFile.shared`, found by `known_hashes`) is the job's by sharing that row, and
    so is each file of a folder found unchanged whole (`ScannedFolder.shared_from`,
    db.folders). With `reuse`, another content analysed before under that key is
    registered finished, its result shared with the earlier image (`reused_from`), and is
    not queued; one pending in another job (not analysed yet) follows that image: pending,
    not queued, finished with its result when a worker stores it (db.followers). The
    folders walked whole whose files the chunk registered one by one are recorded for
    the next run. `sources` follows the submit from chunk to chunk (see
    Sources; None: no shortcut). The work is set-based (a staged temporary table, joins):
    an unchanged re-run costs a walk and a stat per file and a few statements per folder.
    """
    duplicates = _stage(session, job_id, items, reuse, sources)
    pending: list[ImageRef] = []
    reused = failed = following = 0
    if items:
        reused = _share_staged(session, job_id)
        if reuse:
            _find_sources(session, reuse)
            _find_pending(session, job_id, reuse)
        for image_id, path, status, source in _insert_staged(session, job_id):
            if status == ImageStatus.PENDING.value:
                if source is None:
                    pending.append(ImageRef(image_id, path))
                else:
                    following += 1
            elif source is not None:
                reused += 1
            elif status == ImageStatus.FAILED.value:
                failed += 1
        record_folders(session, job_id, [f for f in items if isinstance(f, ScannedFolder) and f.shared_from is None])
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(scanned=Job.scanned + scanned, duplicates=Job.duplicates + duplicates)
    )
    session.commit()
    return Registered(pending, reused, failed, duplicates, following)
