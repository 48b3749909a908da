"""Migration 0009 on an existing database: the images table's two content indexes become
one unique (sha256, job_id), on SQLite by rebuilding the table. Its rows, their faces,
the counter triggers and the one-content-per-job rule all survive, and the SQLite
connections have their foreign keys back on afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import delete, inspect, select, text
from sqlalchemy.exc import IntegrityError

from db.migrate import alembic_config, upgrade
from db.schema import Face, Image, JobCounts
from db.session import make_engine, make_session_factory
from tests.conftest import database_for

pytestmark = pytest.mark.integration

SHA = "ab" * 32


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path):
    yield from database_for(request.param, request, tmp_path)


def _insert_old_rows(url: str) -> None:
    """A job with one analysed image and its face, written at revision 0008 (a fresh
    database: their ids are 1)."""
    with make_engine(url).begin() as connection:
        connection.execute(
            text(
                "INSERT INTO jobs (name, backend, batch_size, force, roots, duplicates, created_at, scanned,"
                " scan_complete) VALUES ('old', 'cnn', 32, false, '[]', 0, CURRENT_TIMESTAMP, 1, true)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO images (job_id, path, folder, sha256, size_bytes, status, attempts, face_count,"
                " created_at) VALUES (1, '/p/a.jpg', '/p', :sha, 10, 'done', 1, 1, CURRENT_TIMESTAMP)"
            ),
            {"sha": SHA},
        )
        emotions = "angry, disgust, fear, happy, sad, surprise, neutral"
        connection.execute(
            text(
                f"INSERT INTO faces (image_id, face_index, x, y, w, h, confidence, {emotions}, dominant,"
                " backend, model_version) VALUES (1, 0, 1, 2, 3, 4, 0.9, 0, 0, 0, 100, 0, 0, 0, 'happy',"
                " 'cnn', 'v')"
            )
        )


def test_upgrade_keeps_rows_faces_triggers_and_uniqueness(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "0008")
    _insert_old_rows(database_url)
    upgrade(database_url)

    inspector = inspect(make_engine(database_url))
    uniques = {c["name"]: c["column_names"] for c in inspector.get_unique_constraints("images")}
    assert uniques == {"uq_images_sha256_job": ["sha256", "job_id"]}
    assert "ix_images_sha256" not in {i["name"] for i in inspector.get_indexes("images")}

    sessions = make_session_factory(database_url)
    with sessions() as session:
        assert session.scalars(select(Face.image_id)).all() == [1]  # the rebuild did not cascade
        counts = session.get(JobCounts, 1)
        assert counts is not None and (counts.done, counts.faces) == (1, 1)
        # the counter triggers work on the new table
        session.add(Image(job_id=1, path="/p/b.jpg", folder="/p", sha256="cd" * 32, size_bytes=5, status="pending"))
        session.commit()
        assert session.get(JobCounts, 1, populate_existing=True).pending == 1  # type: ignore[union-attr]
        # one content per job still
        session.add(Image(job_id=1, path="/p/c.jpg", folder="/p", sha256=SHA, size_bytes=5, status="pending"))
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        if session.connection().dialect.name == "sqlite":
            # foreign keys are on again for the connections the migration used
            assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1
        # deleting an image still cascades to its faces
        session.execute(delete(Image).where(Image.id == 1))
        session.commit()
        assert session.scalars(select(Face.id)).all() == []


def test_downgrade_restores_the_two_indexes(database_url: str) -> None:
    upgrade(database_url)
    _insert_old_rows(database_url)
    command.downgrade(alembic_config(database_url), "0008")
    inspector = inspect(make_engine(database_url))
    uniques = {c["name"]: c["column_names"] for c in inspector.get_unique_constraints("images")}
    assert uniques == {"uq_images_job_sha256": ["job_id", "sha256"]}
    assert "ix_images_sha256" in {i["name"] for i in inspector.get_indexes("images")}
    with make_session_factory(database_url)() as session:
        assert session.scalars(select(Face.image_id)).all() == [1]
        session.add(Image(job_id=1, path="/p/b.jpg", folder="/p", sha256="cd" * 32, size_bytes=5, status="pending"))
        session.commit()
        assert session.get(JobCounts, 1, populate_existing=True).pending == 1  # type: ignore[union-attr]
