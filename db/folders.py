"""Folders walked whole (`folder_scans`): recorded by the job that registered their files,
looked up by a later walk, and shared in one statement when unchanged.

A folder is unchanged for a job when an earlier job recorded the same listing digest for
it (producer.scan.folders: every file's path, size and modification time) and that job's
images in the folder are, right now, as many as its files, all finished under the result
key in use and none found changed by its worker: the rule `known_hashes` applies file by
file (db.registration), checked here per folder. A job records a folder only when its walk met
each of the folder's files once (a fresh submit, no file of the folder given on its
own), so it holds at most one image per file there, and as many images as files means
one per file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    Column,
    Integer,
    String,
    Table,
    Text,
    and_,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from db.members import one_of_job
from db.records import ScannedFolder
from db.schema import FolderScan, Image
from db.stage import fill, staging_table
from emotion_batch.paths import to_db

if TYPE_CHECKING:
    from db.results import ResultKey

# A chunk's folders, staged to be looked up (`job_id` empty) or shared (`job_id`: the
# earlier job; `seq`: the stage position of the folder's first file, db.registration).
_FOLDERS = staging_table(
    "register_folders",
    Column("seq", Integer, primary_key=True),
    Column("folder", Text, nullable=False),
    Column("files", Integer, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("job_id", Integer),
)


def _shared_members(images: Any, job_id: Any, folder: Any, reuse: ResultKey) -> tuple[ColumnElement, ...]:
    """The conditions on `images` (a table alias's columns) for "a row of `job_id` in
    `folder` that a job under `reuse` can share as it is"."""
    from db.results import shareable_filter  # the worker's rule (imports the pipeline: only when reusing)

    return (
        images.folder == folder,
        one_of_job(job_id, images),
        *shareable_filter(images, reuse),
        images.submitted_sha256.is_(None),  # not found changed by its worker (as known_hashes)
    )


def recorded_under(session: Session, roots: Sequence[str]) -> bool:
    """Whether a job recorded any folder under `roots` (folders as walked): when none
    did, as on a collection's first submit, the walk need not wait for look-ups."""
    scans = cast(Table, FolderScan.__table__).c
    for root in roots:
        top = to_db(root.rstrip(os.sep) or os.sep)
        below = top if top.endswith(os.sep) else top + os.sep
        under = or_(scans.folder == top, func.substr(scans.folder, 1, len(below)) == below)
        if session.scalar(select(exists().where(under))):
            return True
    return False


def unchanged_folders(session: Session, folders: Sequence[ScannedFolder], reuse: ResultKey) -> dict[str, int]:
    """{folder: the earliest job whose rows of it this job can share} for those of
    `folders` that are unchanged (see the module docstring). One statement, each folder's
    candidates checked by correlated look-ups on the folder indexes."""
    if not folders:
        return {}
    fill(session, _FOLDERS, [(seq, to_db(f.folder), f.files, f.digest, None) for seq, f in enumerate(folders)])
    staged, scans = _FOLDERS.c, cast(Table, FolderScan.__table__).c
    member = cast(Table, Image.__table__).alias("member")
    members = _shared_members(member.c, scans.job_id, staged.folder, reuse)
    rows = select(func.count()).where(*members).correlate_except(member).scalar_subquery()
    earliest = (
        select(func.min(scans.job_id))
        .where(
            scans.folder == staged.folder,
            scans.digest == staged.digest,
            scans.files == staged.files,
            rows == staged.files,
        )
        .scalar_subquery()
    )
    found = select(staged.seq.label("seq"), earliest.label("job")).subquery()
    query = select(found.c.seq, found.c.job).where(found.c.job.is_not(None))
    return {folders[seq].folder: job for seq, job in session.execute(query)}


def stage_shared(
    session: Session, stage: Table, shares: Sequence[tuple[int, ScannedFolder]], reuse: ResultKey, ordered: bool
) -> int:
    """Put the rows each folder of `shares` ((first stage position, folder)) shares into
    `stage` (db.registration's chunk stage, holding no such rows yet) as files found unchanged,
    `shared` set to the row and `whole` to 1, and return how many. `ordered`: at
    consecutive positions from the folder's first, in path order (the walk's); else
    anywhere after the rows staged before (SQLite numbers them: no sort, half the time)."""
    if not shares:
        return 0
    fill(session, _FOLDERS, [(seq, to_db(f.folder), f.files, f.digest, f.shared_from) for seq, f in shares])
    staged = _FOLDERS.c
    images = cast(Table, Image.__table__).alias("member")
    condition = and_(*_shared_members(images.c, staged.job_id, staged.folder, reuse))
    dialect = session.connection().dialect.name
    source: Any = images
    joined = _FOLDERS.join(images, condition)
    if dialect == "postgresql":
        # driven by the few staged folders whatever the planner guesses of a temporary
        # table (it has no statistics): each folder's rows by the folder index
        source = select(images).where(condition).lateral("member_rows")
        joined = _FOLDERS.join(source, true())
    position: Any = staged.seq + func.row_number().over(partition_by=staged.seq, order_by=source.c.path) - 1
    if not ordered and dialect == "sqlite":
        position = null()  # the next rowid
    rows = select(
        position, source.c.path, literal(""), source.c.sha256, literal(0), source.c.id, literal(1)
    ).select_from(joined)
    columns = ["seq", "path", "folder", "sha256", "size_bytes", "shared", "whole"]
    session.execute(insert(stage).from_select(columns, rows))  # (its rowcount is -1 on PostgreSQL)
    return session.scalar(select(func.count()).select_from(stage).where(stage.c.whole.is_not(None))) or 0


def record_folders(session: Session, job_id: int, folders: Sequence[ScannedFolder]) -> None:
    """Record the folders `job_id` walked whole and registered file by file."""
    if folders:
        session.execute(
            insert(FolderScan),
            [{"job_id": job_id, "folder": to_db(f.folder), "files": f.files, "digest": f.digest} for f in folders],
        )
