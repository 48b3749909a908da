"""Engines and sessions. SQLite gets WAL, a busy timeout and foreign keys."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, Engine, Result, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from emotion_batch.errors import DatabaseUnavailableError

SQLITE_BUSY_TIMEOUT_S = 30.0


def _sqlite_pragmas(busy_ms: int, immediate: bool = False):
    def on_connect(dbapi_connection, _record) -> None:  # noqa: ANN001 (DB-API objects)
        if immediate:  # the driver begins nothing itself: the engine's "begin" event does
            dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB of pages: big jobs' indexes stay in memory
        cursor.close()

    return on_connect


def _begin_immediate(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


@lru_cache(maxsize=8)
def make_engine(url: str, immediate: bool = False) -> Engine:
    """One engine per URL per process (created lazily, after any fork).

    SQLite: WAL, foreign keys, and a busy timeout of 30 s, or `?timeout=SECONDS` in the URL.
    With `immediate` (SQLite only), every transaction takes the write lock when it begins
    (`BEGIN IMMEDIATE`, see `registering`).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        timeout = parsed.query.get("timeout", SQLITE_BUSY_TIMEOUT_S)
        busy = float(timeout[-1] if isinstance(timeout, tuple) else timeout)
        engine = create_engine(url, connect_args={"timeout": busy})
        event.listen(engine, "connect", _sqlite_pragmas(int(busy * 1000), immediate))
        if immediate:
            event.listen(engine, "begin", _begin_immediate)
        return engine
    if parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def make_session_factory(url: str) -> sessionmaker[Session]:
    """A session factory bound to the engine for `url`."""
    return sessionmaker(make_engine(url), expire_on_commit=False)


def registering(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """Sessions for transactions that read and then write on the strength of what they
    read (registering a chunk of files). On SQLite they take the write lock before their
    first read (`BEGIN IMMEDIATE`): a transaction that read first and wants to write after
    another connection committed cannot have its stale snapshot upgraded, and SQLite
    fails it at once ("database is locked") without waiting out the busy timeout; waiting
    for the lock first makes such transactions queue up instead. Elsewhere `sessions`."""
    engine = sessions.kw.get("bind")
    if not isinstance(engine, Engine) or engine.dialect.name != "sqlite":
        return sessions
    if engine.url.database in (None, "", ":memory:"):
        return sessions  # a database in memory is one per engine: it keeps its engine
    url = engine.url.render_as_string(hide_password=False)
    return sessionmaker(make_engine(url, immediate=True), expire_on_commit=False)


def safe_url(url: str) -> str:
    """`url` with its password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 (an unparsable URL is shown as given)
        return url


def unavailable(url: str, exc: BaseException) -> DatabaseUnavailableError:
    """One clear line for a database that cannot be used, with a hint for SQLite files."""
    detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    parsed = make_url(url)
    hint = ""
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        from pathlib import Path

        folder = Path(parsed.database).expanduser().absolute().parent
        if not folder.is_dir():
            hint = f" (the folder {folder} does not exist)"
    return DatabaseUnavailableError(f"cannot use the database at {safe_url(url)}: {detail}{hint}")


def database_problem(exc: BaseException) -> str:
    """One line for a database error met while a command ran, with a hint where one helps."""
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    if "readonly database" in detail:
        detail += " (the database file, or its folder, cannot be written by this user)"
    elif "database is locked" in detail:
        detail += " (another process held it past the busy timeout; try again)"
    return f"database error: {detail}"


def check_database(url: str) -> None:
    """Connect and read the schema version; `DatabaseUnavailableError` when that fails."""
    try:
        with make_engine(url).connect() as connection:
            connection.execute(text("SELECT 1"))
    except DBAPIError as exc:
        make_engine(url).dispose()
        raise unavailable(url, exc) from exc


def checkpoint(session: Session) -> None:
    """Copy SQLite's write-ahead log into the database file now (PASSIVE: it never waits
    for readers or writers), so what was committed does not live only in the log (a lost
    `-wal` file would lose it); nothing on other databases."""
    if session.get_bind().dialect.name != "sqlite":
        return
    try:
        session.execute(text("PRAGMA wal_checkpoint(PASSIVE)"))
        session.commit()
    except OperationalError:  # what was committed stands; the next boundary copies it
        session.rollback()


def rows_changed(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE matched (`Session.execute` is typed as returning a plain
    `Result`; for DML it is a `CursorResult`, which has `rowcount`)."""
    return cast("CursorResult[Any]", result).rowcount
