"""Paths and job names have no length limit, on PostgreSQL too (issue 13 #6): the real
producer CLI against a real PostgreSQL database, and the migration on an existing one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import select, text

from db.migrate import alembic_config, upgrade
from db.schema import Image, Job
from db.session import make_engine, make_session_factory
from tests.conftest import database_for, run_producer

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path):
    yield from database_for(request.param, request, tmp_path)


def test_long_folder_paths_and_job_names_are_stored(
    database_url: str, redis_server, photos_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path.joinpath(*(c * 120 for c in "abc"))  # a folder path over 360 characters
    folder.mkdir(parents=True)
    shutil.copy(photos_dir / "img12.jpg", folder / ("f" * 200 + ".jpg"))
    env = {"DATABASE_URL": database_url, "REDIS_URL": redis_server.url}
    default_name = run_producer(env, "submit", str(folder))  # the job is named after the path
    assert default_name.returncode == 0, default_name.stderr
    long_name = run_producer(env, "submit", str(folder), "--name", "n" * 5000)
    assert long_name.returncode == 0, long_name.stderr
    with make_session_factory(database_url)() as session:
        names = session.scalars(select(Job.name).order_by(Job.id)).all()
        paths = session.scalars(select(Image.path)).all()
    assert names == [str(folder), "n" * 5000]
    assert paths == [str(folder / ("f" * 200 + ".jpg"))] * 2


def test_migration_lifts_the_limit_on_an_existing_database(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "0001")
    with make_engine(database_url).begin() as connection:
        connection.execute(
            text(
                "INSERT INTO jobs (name, backend, batch_size, force, roots, duplicates, created_at) "
                "VALUES ('old', 'cnn', 32, false, '[]', 0, CURRENT_TIMESTAMP)"
            )
        )
    upgrade(database_url)
    with make_session_factory(database_url)() as session:
        job = session.scalars(select(Job)).one()
        job.name = "x" * 1000
        session.commit()
        assert session.scalar(select(Job.name)) == "x" * 1000
