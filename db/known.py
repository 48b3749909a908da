"""Which files the walk found that an earlier image already hashed: staged (path, size,
modification time) and looked up in one join, so that re-runs need not read them again."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from sqlalchemy import BigInteger, Column, DateTime, Integer, Table, Text, and_, case, func, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from db.records import Candidate
from db.schema import Image, ImageStatus
from db.stage import driver_rows, fill, staging_table, time_param
from emotion_batch.paths import to_db

if TYPE_CHECKING:
    from db.results import ResultKey

# What the walk found, staged for the look-up.
_FOUND = staging_table(
    "register_found",
    Column("seq", Integer, primary_key=True),
    Column("path", Text, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("file_mtime", DateTime(timezone=True)),
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
