"""A fresh PostgreSQL database per test on the server named by TEST_POSTGRES_URL
(`bash scripts/postgres start DIR` starts a private one and prints that URL)."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from db.session import make_engine

ENV = "TEST_POSTGRES_URL"


def _libpq(url: str, database: str | None = None) -> str:
    """A libpq conninfo for psycopg from a SQLAlchemy-style URL."""
    parsed = make_url(url).set(drivername="postgresql")
    if database:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def server_url() -> str | None:
    """TEST_POSTGRES_URL when a server answers there, else None."""
    url = os.environ.get(ENV)
    if not url:
        return None
    try:
        with psycopg.connect(_libpq(url), connect_timeout=3):
            return url
    except psycopg.OperationalError:
        return None


@contextmanager
def fresh_database(server: str) -> Iterator[str]:
    """CREATE DATABASE with a unique name; yield its URL; DROP it (connections forced) after."""
    name = f"eb_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(server), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = _libpq(server, name)
    try:
        yield url
    finally:
        make_engine(url).dispose()
        _drop(server, name)


def _drop(server: str, name: str) -> None:
    """Drop a test database; one still held open (a server process) is left for the
    private cluster's removal rather than failing the test it belonged to."""
    try:
        with psycopg.connect(_libpq(server), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    except psycopg.errors.InsufficientPrivilege as exc:
        warnings.warn(f"test database {name} not dropped: {exc}", stacklevel=2)
