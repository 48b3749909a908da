"""Producer-side writes and reads: jobs, image registration, pending work, progress."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, cast

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
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
from db.members import one_of_job
from db.schema import Image, ImageStatus, Job, JobCounts, JobImage, utcnow
from db.session import checkpoint, rows_changed
from db.stage import driver_rows, fill, time_param
from emotion_batch.errors import SharedFolderChangedError
from emotion_batch.messages import ImageRef
from emotion_batch.paths import storable, to_db
from emotion_batch.scan import Candidate, ScannedFile, ScannedFolder

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


# What the walk found (path, size, modification time), staged to look up in one join
# which of those files an earlier image already hashed.
_FOUND = Table(
    "register_found",
    MetaData(),
    Column("seq", Integer, primary_key=True),
    Column("path", Text, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("file_mtime", DateTime(timezone=True)),
    prefixes=["TEMPORARY"],
)


def known_hashes(
    session: Session, found: Sequence[Candidate], reuse: ResultKey | None = None
) -> dict[str, tuple[str, int | None]]:
    """{path: (sha256, shared)} for files whose path, size and modification time match an
    image already registered with a real content hash (so re-runs need not read them
    again). `shared` is that image's id when it is finished with a result under `reuse`
    (db.results.reusable_filter, a reuse of a result allowed: its faces are the same):
    the file is then unchanged since an analysis and the new job shares that row as it is
    (`job_images`), else None. Images failed at scan time (never delivered) carry a path
    key, not a hash, and an image found changed by its worker (`submitted_sha256`) a hash
    of other bytes than the ones stat'ed: both skipped. Compared in the database (one
    look-up per file on the path index), not row by row here."""
    if not found:
        return {}
    when = time_param(session)
    fill(session, _FOUND, [(seq, to_db(c.path), c.size, when(c.mtime)) for seq, c in enumerate(found)])
    dialect = session.connection().dialect.name
    sql = _KNOWN_SQL.get((dialect, reuse))
    if sql is None:
        sql = _KNOWN_SQL[(dialect, reuse)] = _known_sql(session, reuse)
    known: dict[str, tuple[str, int | None]] = {}
    for seq, sha256, shared in driver_rows(session, sql):  # the preferred match of a file first
        known.setdefault(found[seq].path, (sha256, shared))
    return known


# The look-up's SQL per (dialect, result key), compiled once: it runs every 2,000 files.
_KNOWN_SQL: dict[tuple[str, ResultKey | None], str] = {}


def _known_sql(session: Session, reuse: ResultKey | None) -> str:
    """(seq, sha256, shared) of the earlier images that match a staged file, by seq, the
    preferred one of each file first: the earliest image that can be shared, else the
    earliest."""
    staged = _FOUND.c
    images = cast(Table, Image.__table__)
    same_file = (
        images.c.path == staged.path,
        images.c.size_bytes == staged.size_bytes,
        images.c.file_mtime == staged.file_mtime,
        ~((images.c.status == ImageStatus.FAILED.value) & (images.c.attempts == 0)),
        images.c.submitted_sha256.is_(None),
    )
    shareable: ColumnElement = literal(False)
    if reuse is not None:
        from db.results import shareable_filter  # the worker's rule (imports the pipeline: only when reusing)

        shareable = and_(*shareable_filter(images.c, reuse))
    dialect = session.connection().dialect
    shared = case((shareable, images.c.id), else_=None)
    if dialect.name == "sqlite":
        # One probe of the path index per staged file (SQLite drives a join from the
        # small stage); every match comes back, the preferred one first.
        query = (
            select(staged.seq, images.c.sha256, shared)
            .select_from(_FOUND.join(images, and_(*same_file)))
            .order_by(staged.seq, case((shareable, 0), else_=1), images.c.id)
        )
    else:
        # PostgreSQL has no statistics on a temporary table and planned a join as a scan
        # of all images: correlated look-ups, driven by the stage whatever it guesses.
        match: ColumnElement = select(func.min(images.c.id)).where(*same_file).scalar_subquery()
        if reuse is not None:  # the earliest image that can be shared, else any (coalesce stops at the first)
            match = func.coalesce(select(func.min(images.c.id)).where(*same_file, shareable).scalar_subquery(), match)
        matches = select(staged.seq.label("seq"), match.label("match")).subquery()
        query = select(matches.c.seq, images.c.sha256, shared).join(images, images.c.id == matches.c.match)
    return str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


@dataclass(frozen=True)
class Registered:
    """What one registered chunk added to a job."""

    pending: list[ImageRef]  # to enqueue
    reused: int  # finished at once with an earlier result
    failed: int  # failed at scan time (unreadable, too large)
    duplicates: int
    following: int = 0  # pending, not queued: another job's pending image of the same content gives its result


# One chunk of scanned files, staged in a temporary table (per connection, emptied for
# every chunk) so that registering it is a few set-based statements run in the
# database's own code: duplicates, the earlier result to reuse and the new rows are
# found and written by joins, not row by row in Python.
_STAGE = Table(
    "register_stage",
    MetaData(),
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
    prefixes=["TEMPORARY"],
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
    first: dict[str, ScannedFile] = {}
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
        first[item.sha256] = item
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
    fill(session, _STAGE, rows)
    stage = _STAGE.c
    unique = sources.add([f for _, f in shares], bool(rows)) if sources is not None else False
    if shares:
        expected = sum(folder.files for _, folder in shares)
        staged = stage_shared(session, _STAGE, shares, cast("ResultKey", reuse), ordered=bool(rows) or not unique)
        if staged != expected:
            raise SharedFolderChangedError(job_id, staged, expected)
        if rows or not unique:
            # a content met twice in the chunk (a folder shared from another job than a
            # file or folder before it): its first place stays
            firsts = select(func.min(stage.seq)).group_by(stage.sha256)
            duplicates += rows_changed(session.execute(delete(_STAGE).where(stage.seq.not_in(firsts))))
    if not rows and (unique or not shares):
        return duplicates
    earlier = cast(Table, Image.__table__).alias("earlier")
    # First which contents are in the job at all, from the index alone (the job's own
    # (sha256, job_id); a shared image's id from the same index, then job_images' key):
    # no image row is read for the many that are not. Their paths only for the few that are.
    own = exists().where(earlier.c.job_id == job_id, earlier.c.sha256 == stage.sha256)
    # nested, so that it is driven by the content's index (a join was planned from the
    # job's whole job_images, a scan growing with the job)
    member = exists().where(JobImage.job_id == job_id, JobImage.image_id == earlier.c.id)
    shared = exists().where(earlier.c.sha256 == stage.sha256, member)
    checked = [stage.whole.is_(None)] if unique else []  # a shared folder's rows need no check
    hits = [seq for (seq,) in session.execute(select(stage.seq).where(or_(own, shared), *checked))]
    if hits:
        in_job = (
            select(earlier.c.path)
            .where(earlier.c.sha256 == stage.sha256, one_of_job(job_id, earlier.c))
            .limit(1)
            .scalar_subquery()
        )
        found = select(stage.seq, stage.path, in_job.label("existing")).where(stage.seq.in_(hits)).subquery()
        known = session.execute(
            select(found.c.seq, found.c.path, found.c.existing).where(found.c.existing.is_not(None))
        )
        duplicates += sum(1 for _, path, existing in known if path != existing)
        session.execute(delete(_STAGE).where(stage.seq.in_(hits)))
    return duplicates


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
