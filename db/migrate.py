"""Create or upgrade the schema to the newest Alembic revision."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from db.session import make_engine, unavailable
from emotion_batch.errors import DatabaseNotReadyError

INI = Path(__file__).with_name("alembic.ini")


def alembic_config(url: str) -> Config:
    """An Alembic config for `url` that leaves the caller's logging alone."""
    config = Config(str(INI))
    config.attributes["url"] = url
    config.attributes["configure_logging"] = False
    return config


def upgrade(url: str) -> None:
    """Bring the database at `url` to the head revision (idempotent); one clear
    `DatabaseUnavailableError` when the database cannot be opened or written."""
    try:
        command.upgrade(alembic_config(url), "head")
    except DBAPIError as exc:
        make_engine(url).dispose()
        raise unavailable(url, exc) from exc


def require_current(url: str) -> None:
    """Fail clearly unless the database at `url` exists at the head revision.

    For read-only commands: they neither create a database nor migrate one.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not Path(parsed.database).is_file():
            raise DatabaseNotReadyError(f"no database at {parsed.database}: submit a job first")
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    try:
        with make_engine(url).connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except DBAPIError as exc:
        make_engine(url).dispose()
        raise unavailable(url, exc) from exc
    if current != head:
        where = parsed.render_as_string(hide_password=True)
        raise DatabaseNotReadyError(
            f"database {where} is at schema revision {current or 'none'}, not {head}: "
            "run `producer migrate` (or any command that writes, e.g. submit)"
        )
