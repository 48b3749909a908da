"""Flower as docker-compose.yml configures it (FLOWER_* environment, basic auth) against a
real redis-server: the API needs the password, /healthcheck and the Prometheus metrics
docs/deployment.md lists answer."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from emotion_batch.config import REPO_ROOT
from producer.local import free_port

pytestmark = pytest.mark.integration

DOCUMENTED_METRICS = (
    "flower_events_total",
    "flower_task_runtime_seconds",
    "flower_task_prefetch_time_seconds",
    "flower_worker_prefetched_tasks",
    "flower_worker_online",
    "flower_worker_number_of_currently_executing_tasks",
)


def _get(url: str, auth: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


@pytest.fixture
def flower(redis_server, tmp_path: Path):
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "FLOWER_BASIC_AUTH": "admin:s3cret",
        "FLOWER_PERSISTENT": "true",
        "FLOWER_DB": str(tmp_path / "flower.db"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker", "flower", f"--port={port}"],
        cwd=REPO_ROOT,
        env=env,
        stdout=open(tmp_path / "flower.log", "wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if _get(base + "/healthcheck")[0] == 200:
                break
        except OSError:
            pass
        time.sleep(0.3)
    yield base
    process.terminate()
    process.wait(timeout=30)


def test_flower_auth_and_metrics(flower: str) -> None:
    assert _get(flower + "/healthcheck") == (200, "OK")
    assert _get(flower + "/api/workers")[0] == 401
    assert _get(flower + "/api/workers", "admin:wrong")[0] == 401
    assert _get(flower + "/api/workers", "admin:s3cret")[0] == 200
    status, metrics = _get(flower + "/metrics")
    assert status == 200
    listed = (REPO_ROOT / "docs" / "deployment.md").read_text()
    for name in DOCUMENTED_METRICS:
        assert f"# TYPE {name} " in metrics, name
        assert f"`{name}" in listed, name
