"""The CLI's commands against real parts: `submit`, `status` and `resume` on a real
redis-server (no worker: the queue itself is inspected), and `producer run`, the
embedded default, end to end on the sample photos."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import redis
from PIL import Image

from emotion_batch.defaults import REPO_ROOT
from tests.conftest import need, run_producer


def queued_task_ids(url: str, queue: str) -> list[str]:
    """Task ids of the messages waiting in a Celery queue on Redis (oldest first)."""
    raw = redis.Redis.from_url(url).lrange(queue, 0, -1)
    return [json.loads(m)["headers"]["id"] for m in reversed(raw)]


def test_submit_status_and_resume_use_deterministic_batch_ids(redis_server, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(1)
    for n in range(5):
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(photos / f"{n}.png")
    queue = f"q-{uuid.uuid4().hex[:8]}"  # this test's own queue on the shared redis-server
    env = {"REDIS_URL": redis_server.url, "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "QUEUE": queue}
    submitted = run_producer(env, "submit", str(photos), "--batch-size", "2")
    assert submitted.returncode == 0, submitted.stderr
    job = int(submitted.stdout.split()[-1])
    first = queued_task_ids(redis_server.url, queue)
    assert len(first) == 3 and all(t.startswith(f"job{job}-batch") for t in first)
    status = run_producer(env, "status", str(job))
    assert status.returncode == 0 and f"job {job}: 0/5 finished" in status.stdout and "pending 5" in status.stdout
    redis.Redis.from_url(redis_server.url).delete(queue)  # the queue is lost
    resumed = run_producer(env, "resume", str(job))
    assert resumed.returncode == 0 and "5 pending images re-enqueued; 3 batches" in resumed.stderr, resumed.stderr
    again = queued_task_ids(redis_server.url, queue)  # same batches, each tagged as a resend
    assert [t.rsplit("-resend", 1)[0] for t in again] == first and len({t.rsplit("-", 1)[1] for t in again}) == 1
    redis.Redis.from_url(redis_server.url).delete(queue)


@pytest.mark.integration
def test_producer_run_analyses_the_sample_photos_end_to_end(worker_env: dict[str, str], tmp_path: Path) -> None:
    """No REDIS_URL: `run` starts its own redis-server and a worker, writes the samples
    into the working folder, analyses them and prints the report."""
    import shutil

    need(shutil.which("redis-server") is not None, "redis-server")
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update({**worker_env, "WORKER_BACKENDS": '["cnn"]', "PYTHONPATH": str(REPO_ROOT)})
    done = subprocess.run(
        [sys.executable, "-m", "producer.cli", "run", "--timeout", "400"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = tmp_path / ".emotion-batch" / "worker.log"
    assert done.returncode == 0, done.stderr[-3000:] + (log.read_text()[-3000:] if log.exists() else "")
    assert "started redis-server" in done.stderr and "wrote 9 sample photos" in done.stderr
    assert "face detector: yunet (yunet-8f2383e4dd3cfbb4)" in done.stderr  # the configured shared/ file
    report = done.stdout
    compact = "".join(report.split())  # rich folds long cells at the terminal width
    assert "people" in compact and "other" in compact
    # 5 astronaut photos with one face each; 2 photos without; the text file and the truncated JPEG fail
    assert "failed: " in report and "notes.jpg" in compact and "broken.jpg" in compact
    assert "9/9 finished (done 5, no face 2, failed 2, pending 0), 5 faces" in done.stderr.replace("\n", " ")
    totals = next(line for line in report.splitlines() if "(all)" in line).split()
    assert totals[1:5] == ["9", "2", "2", "5"]  # images, no face, failed, faces
