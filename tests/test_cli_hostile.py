"""Hostile settings and faults against the real `producer` CLI in subprocesses (a real
redis-server, real SQLite files, a real worker for the job's end): each is one line on
stderr and a non-zero exit, never a traceback; SQLite's log is copied into the database
at job boundaries (issue 24, minor items)."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from producer.local import LocalRedis, LocalWorker
from tests.conftest import run_producer

pytestmark = pytest.mark.integration
FORMATS = ("table", "json", "csv", "parquet", "html")


def _one_line_error(result, *words: str) -> None:  # noqa: ANN001 (a CompletedProcess)
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and all(w in last for w in words), result.stderr


@pytest.fixture
def submitted(tmp_path: Path, redis_server, photos_dir: Path) -> dict[str, str]:
    """A job of two photos registered (no worker: they stay pending) and its environment."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("img1.jpg", "img2.jpg"):
        shutil.copy(photos_dir / name, folder / name)
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "REDIS_URL": redis_server.url, "FOLDER": str(folder)}
    result = run_producer(env, "submit", str(folder))
    assert result.returncode == 0, result.stderr
    return env


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("notaurl", ("DATABASE_URL", "not a database URL")),
        ("mysql://user:pw@db.example/emotion", ("DATABASE_URL", "unsupported database 'mysql'")),
        ("postgresql+asyncpg://user@db.example/emotion", ("DATABASE_URL", "not installed")),
    ],
)
def test_unusable_database_urls_are_one_line(url: str, words: tuple[str, ...], tmp_path: Path) -> None:
    _one_line_error(run_producer({"DATABASE_URL": url}, "status", "1"), *words)
    good = {"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    _one_line_error(run_producer(good, "status", "1", "--database-url", url), *words)


def test_read_only_database_is_one_line(submitted: dict[str, str], tmp_path: Path) -> None:
    """The database file cannot be written (opened read-only, as for a file without write
    permission): the submit says so in one line."""
    read_only = {**submitted, "DATABASE_URL": f"sqlite:///file:{tmp_path / 'cli.db'}?mode=ro&uri=true"}
    _one_line_error(run_producer(read_only, "submit", submitted["FOLDER"]), "readonly database", "cannot be written")


def test_report_and_chart_onto_unwritable_targets(submitted: dict[str, str], tmp_path: Path) -> None:
    """`report --out` onto a folder or /dev/full in every format, `chart --out /dev/full`."""
    folder = tmp_path / "a-folder"
    folder.mkdir()
    for fmt in FORMATS:
        _one_line_error(run_producer(submitted, "report", "1", "--format", fmt, "--out", str(folder)), "cannot write")
        _one_line_error(
            run_producer(submitted, "report", "1", "--format", fmt, "--out", "/dev/full"), "cannot write", "/dev/full"
        )
    _one_line_error(run_producer(submitted, "chart", "1", "--out", "/dev/full"), "cannot write", "/dev/full")
    written = run_producer(submitted, "report", "1", "--format", "json", "--out", str(tmp_path / "r.json"))
    assert written.returncode == 0 and (tmp_path / "r.json").stat().st_size > 0, written.stderr


def test_resume_with_the_broker_down_or_refusing_is_one_line(tmp_path: Path, photos_dir: Path) -> None:
    own = LocalRedis(tmp_path / "redis", password="right-password").start()
    try:
        folder = tmp_path / "photos"
        folder.mkdir()
        shutil.copy(photos_dir / "img1.jpg", folder / "img1.jpg")
        env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "REDIS_URL": own.url}
        assert run_producer(env, "submit", str(folder)).returncode == 0
        wrong = own.url.replace("right-password", "wrong-password")
        for url in (wrong, "redis://127.0.0.1:1/0"):
            _one_line_error(run_producer({**env, "REDIS_URL": url}, "resume", "1"), "cannot use the broker")
        assert run_producer(env, "resume", "1").returncode == 0
    finally:
        own.stop()


def _database_without_its_log(database: Path, copy: Path) -> sqlite3.Connection:
    """The database file alone, as if its `-wal` file were lost."""
    shutil.copy(database, copy)
    return sqlite3.connect(copy)


def test_job_boundaries_are_checkpointed(tmp_path: Path, redis_server, photos_dir: Path, worker_env) -> None:  # noqa: ANN001
    """With another connection open (SQLite then never checkpoints on close), the job and
    its images are in the database file itself once the submit ends, and their results
    once the job's last image is done: losing the `-wal` file loses neither."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("img1.jpg", "img2.jpg", "img3.jpg"):
        shutil.copy(photos_dir / name, folder / name)
    database = tmp_path / "emotion.db"
    env = {**worker_env, "DATABASE_URL": f"sqlite:///{database}", "REDIS_URL": redis_server.url}
    assert run_producer(env, "migrate").returncode == 0
    reader = sqlite3.connect(database)
    reader.execute("SELECT count(*) FROM jobs").fetchone()  # a connection that stays open
    assert run_producer(env, "submit", str(folder)).returncode == 0
    alone = _database_without_its_log(database, tmp_path / "after-submit.db")
    assert alone.execute("SELECT count(*) FROM images WHERE job_id = 1").fetchone() == (3,)
    assert alone.execute("SELECT scan_complete FROM jobs WHERE id = 1").fetchone() == (1,)
    alone.close()

    with LocalWorker(env, concurrency=1, name=f"wal-{tmp_path.name}", log_file=tmp_path / "worker.log"):
        deadline = time.monotonic() + 300
        while reader.execute("SELECT pending FROM job_counts WHERE job_id = 1").fetchone() != (0,):
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-2000:]
            time.sleep(0.5)
        alone = _database_without_its_log(database, tmp_path / "after-job.db")
        finished = alone.execute("SELECT count(*) FROM images WHERE job_id = 1 AND status != 'pending'").fetchone()
        assert finished == (3,)
        assert alone.execute("SELECT count(*) FROM faces").fetchone()[0] >= 3
    reader.close()
