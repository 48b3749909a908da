"""Staging rows in a temporary table for set-based registration: filled straight through
the driver (no per-row work in SQLAlchemy), read back the same way. The producer stages a
chunk's files (db.registration, db.known) and a chunk's folders (db.folders) here."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from itertools import chain
from typing import Any

from sqlalchemy import Column, DateTime, MetaData, Table, delete
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateTable

WAL_CHECKPOINT_PAGES = 40_000  # SQLite pages (4 KiB): about 160 MiB of log between copies
WAL_SIZE_LIMIT = 64 * 1024 * 1024


def _sqlite_datetime(value: datetime) -> str:
    """A date-time as SQLAlchemy's SQLite DateTime stores it (its default storage format,
    the zone left out), formatted in a third of the time its bind processor takes."""
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (  # noqa: UP031 (the fastest formatting here)
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )


def staging_table(name: str, *columns: Column) -> Table:
    """A temporary table of its own metadata: each connection has its own, created when a
    chunk is staged (`fill`), so it never joins the schema that migrations create."""
    return Table(name, MetaData(), *columns, prefixes=["TEMPORARY"])


def datetime_param(dialect: Dialect) -> Callable[[datetime], Any] | None:
    """What a timezone-aware DateTime column does to a date-time before the driver sees
    it (None: the driver takes it as it is)."""
    process = DateTime(timezone=True).dialect_impl(dialect).bind_processor(dialect)
    if process is not None and dialect.name == "sqlite":
        return _sqlite_datetime
    return process


def time_param(session: Session) -> Callable[[datetime | None], Any]:
    """A date-time (or None) as the stage's DateTime column would hand it to the driver."""
    convert = datetime_param(session.connection().dialect)
    if convert is None:
        return lambda value: value
    return lambda value: None if value is None else convert(value)


def fill(session: Session, table: Table, rows: list[tuple]) -> None:
    """Empty the temporary `table` (created on first use in this connection) and insert
    `rows` (tuples in column order, date-times already through `time_param`) straight to
    the driver: no per-row work in SQLAlchemy. On SQLite as multi-row INSERTs, not an
    executemany: the driver lets go of the interpreter lock at every statement step, and
    an executemany steps once per row; with the walking and hashing threads waiting for
    the lock, taking it back a thousand times per chunk cost more than the insert."""
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name == "postgresql":
        # A temporary table has no statistics: PostgreSQL guesses a thousand rows, prices
        # the correlated look-ups over them past its JIT thresholds and spends 200 ms
        # compiling a 4 ms query. For this transaction only.
        connection.exec_driver_sql("SET LOCAL jit = off")
    if dialect.name == "sqlite" and not connection.info.get("staging"):
        # The stage lives in memory, not in a temporary file written and read back for
        # every chunk (once per connection: changing it drops temporary tables).
        connection.exec_driver_sql("PRAGMA temp_store = MEMORY")
        # A registering connection copies the write-ahead log into the database every
        # WAL_CHECKPOINT_PAGES pages instead of every 1,000: a chunk's inserts dirty pages
        # all over the content-hash index, so the default copied (and synced) the log
        # after every commit (bench/RESULTS.md, "SQLite checkpoint interval"); the log
        # file is cut back to WAL_SIZE_LIMIT once copied.
        connection.exec_driver_sql(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
        connection.exec_driver_sql(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        connection.info["staging"] = True
    session.execute(CreateTable(table, if_not_exists=True))
    session.execute(delete(table))
    if not rows:
        return
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    names = ", ".join(c.name for c in table.columns)
    row = f"({', '.join([mark] * len(table.columns))})"
    if dialect.name != "sqlite":
        connection.exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES {row}", rows)
        return
    per = _rows_per_insert(connection.connection.dbapi_connection, len(table.columns))
    for start in range(0, len(rows), per):
        part = rows[start : start + per]
        values = tuple(chain.from_iterable(part))  # a tuple: one statement, not many
        connection.exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES {', '.join([row] * len(part))}", values)


ROWS_PER_INSERT = 1000  # rows of one multi-row INSERT into a stage (SQLite)


def _rows_per_insert(dbapi_connection: Any, columns: int) -> int:
    """Rows of `columns` values one SQLite statement can bind (its variable limit: 32,766
    since SQLite 3.32, 999 before), at most ROWS_PER_INSERT."""
    import sqlite3

    which = getattr(sqlite3, "SQLITE_LIMIT_VARIABLE_NUMBER", None)  # Python 3.11+
    getlimit = getattr(dbapi_connection, "getlimit", None)
    limit = getlimit(which) if which is not None and getlimit is not None else 999
    return max(1, min(ROWS_PER_INSERT, limit // columns))


def driver_rows(session: Session, sql: str) -> list[tuple]:
    """The rows of `sql` (no parameters) as the driver returns them, in the session's
    transaction: SQLAlchemy's result rows cost 3 us each, a third of an unchanged file's
    look-up."""
    cursor = session.connection().connection.cursor()
    try:
        cursor.execute(sql)
        return list(cursor.fetchall())
    finally:
        cursor.close()
