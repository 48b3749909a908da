"""Registration under contention (issue 24, defect 4): a submit beside another process
committing to the same SQLite file in a loop waits for the write lock and succeeds,
with every file registered once, instead of failing at once with "database is locked"
(a read snapshot that another commit made stale is never upgraded to a write).

Real processes: the `producer` CLI, a private redis-server, a second Python process
writing to the database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from db.schema import Image, Job
from db.session import make_session_factory
from emotion_batch.config import REPO_ROOT
from producer.local import free_port
from tests.conftest import run_producer
from tests.test_web_browser import start_serve

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


@contextmanager
def committing_in_a_loop(db: Path, tmp: Path):
    """Another process committing to `db` all along; yields a list that gets its count."""
    stop, commits = tmp / "stop", []
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(stop)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        yield commits
    finally:
        stop.touch()
        commits.append(int((writer.communicate(timeout=60)[0] or "0").split()[-1]))


def test_submit_beside_a_process_committing_in_a_loop_registers_every_file(tmp_path: Path, redis_server) -> None:
    db = tmp_path / "busy.db"
    env = {"DATABASE_URL": f"sqlite:///{db}", "REDIS_URL": redis_server.url, "BACKEND": "cnn", "QUEUE": "busy-test"}
    assert run_producer(env, "migrate").returncode == 0
    _files(tmp_path / "photos", 3000)
    with committing_in_a_loop(db, tmp_path) as commits:
        result = run_producer(env, "submit", str(tmp_path / "photos"), "--batch-size", "1024")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "locked" not in result.stderr
    assert commits[0] > 100  # the other process really was committing all along
    job_id = int(result.stdout.strip().splitlines()[-1])
    with make_session_factory(env["DATABASE_URL"])() as session:
        assert session.scalar(select(func.count()).where(Image.job_id == job_id)) == 3000
        job = session.get(Job, job_id)
        assert job is not None and job.scan_complete and job.scanned == 3000
    assert json.loads(run_producer(env, "report", str(job_id), "--format", "json").stdout)["pending"] == 3000


def test_api_path_job_and_upload_racing_beside_a_committing_process_both_register_everything(
    tmp_path: Path, redis_server, worker_env: dict[str, str]
) -> None:
    """Through `producer serve`: a path job (scanned in the background) and an upload at
    the same moment, while another process commits in a loop; neither stays scanning."""
    db, library, port = tmp_path / "busy.db", tmp_path / "library", free_port()
    _files(library / "photos", 2000)
    env = {
        **{k: v for k, v in os.environ.items() if k != "WEB_TOKEN"},
        **worker_env,
        "DATABASE_URL": f"sqlite:///{db}",
        "REDIS_URL": redis_server.url,
        "QUEUE": "busy-api-test",
        "ALLOWED_ROOTS": json.dumps([str(library)]),
        "UPLOAD_ROOT": str(tmp_path / "uploads"),
    }
    process, url = start_serve(["--port", str(port)], env, REPO_ROOT, tmp_path / "serve.log", port)
    try:
        with committing_in_a_loop(db, tmp_path), httpx.Client(base_url=url, timeout=120) as http:
            uploaded: list[httpx.Response] = []
            files = [("files", (f"u{i}.jpg", JPEG + b"upload" + bytes([i]))) for i in range(5)]
            racer = threading.Thread(target=lambda: uploaded.append(http.post("/api/jobs/upload", files=files)))
            racer.start()
            created = http.post("/api/jobs", json={"paths": [str(library)], "batch_size": 1024})
            racer.join()
            assert created.status_code == 202 and uploaded[0].status_code == 201, (created.text, uploaded[0].text)
            jobs = {created.json()["job"]: 2000, uploaded[0].json()["job"]: 5}
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and any(http.get(f"/api/jobs/{j}").json()["scanning"] for j in jobs):
                time.sleep(0.5)
            for job, count in jobs.items():
                state = http.get(f"/api/jobs/{job}").json()
                assert not state["scanning"] and state["total"] == state["pending"] == count, state
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert "locked" not in (tmp_path / "serve.log").read_text(errors="replace")
