"""Registration under contention (issue 24, defect 4): a submit beside another process
committing to the same SQLite file in a loop waits for the write lock and succeeds,
with every file registered once, instead of failing at once with "database is locked"
(a read snapshot that another commit made stale is never upgraded to a write).

Real processes: the `producer` CLI, a private redis-server, a second Python process
writing to the database."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.schema import Image, Job
from db.session import make_session_factory
from tests.conftest import run_producer

pytestmark = pytest.mark.integration

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 60

# Commits one small row after another on its own connection, as fast as it can, until
# the file `stop` appears.
WRITER = textwrap.dedent(
    """
    import os, sqlite3, sys
    db, stop = sys.argv[1], sys.argv[2]
    connection = sqlite3.connect(db, timeout=30, isolation_level=None)
    connection.execute("CREATE TABLE IF NOT EXISTS noise (n INTEGER)")
    print("ready", flush=True)
    n = 0
    while not os.path.exists(stop):
        connection.execute("INSERT INTO noise VALUES (?)", (n,))
        n += 1
    print(n, flush=True)
    """
)


def _files(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    for i in range(count):
        (folder / f"f{i:05d}.jpg").write_bytes(JPEG + i.to_bytes(4, "big"))


def test_submit_beside_a_process_committing_in_a_loop_registers_every_file(tmp_path: Path, redis_server) -> None:
    db = tmp_path / "busy.db"
    env = {"DATABASE_URL": f"sqlite:///{db}", "REDIS_URL": redis_server.url, "BACKEND": "cnn", "QUEUE": "busy-test"}
    assert run_producer(env, "migrate").returncode == 0
    _files(tmp_path / "photos", 3000)
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), str(stop)], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        result = run_producer(env, "submit", str(tmp_path / "photos"), "--batch-size", "1024")
    finally:
        stop.touch()
        commits = int((writer.communicate(timeout=60)[0] or "0").split()[-1])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "locked" not in result.stderr
    assert commits > 100  # the other process really was committing all along
    job_id = int(result.stdout.strip().splitlines()[-1])
    with make_session_factory(env["DATABASE_URL"])() as session:
        assert session.scalar(select(func.count()).where(Image.job_id == job_id)) == 3000
        job = session.get(Job, job_id)
        assert job is not None and job.scan_complete and job.scanned == 3000
    assert json.loads(run_producer(env, "report", str(job_id), "--format", "json").stdout)["pending"] == 3000
