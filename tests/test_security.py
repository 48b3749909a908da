"""A password-protected Redis: the password travels in REDIS_URL for every command and
worker, and a wrong one is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from producer.local import LocalRedis, LocalWorker
from tests.conftest import need, run_producer

pytestmark = pytest.mark.integration


def test_redis_password_via_redis_url(tmp_path: Path, worker_env: dict[str, str], photos_dir: Path) -> None:
    need(shutil.which("redis-server") is not None, "redis-server")
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("img1.jpg", "couple.jpg"):
        shutil.copy(photos_dir / name, photos / name)
    with LocalRedis(tmp_path / "redis", password="s3cret-pass") as redis:
        env = {**worker_env, "REDIS_URL": redis.url, "WORKER_BACKENDS": json.dumps(["deepface"])}
        wrong = run_producer(
            {**env, "REDIS_URL": redis.url.replace("s3cret-pass", "nope")},
            "submit",
            str(photos),
            "--backend",
            "deepface",
            timeout=120,
        )
        assert wrong.returncode != 0
        assert "cannot use the broker" in wrong.stderr and "nope" not in wrong.stderr, wrong.stderr
        assert "Traceback" not in wrong.stderr
        with LocalWorker(env, name="secure", log_file=tmp_path / "worker.log"):
            ok = run_producer(env, "submit", str(photos), "--backend", "deepface", "--wait", "--timeout", "240")
    assert ok.returncode == 0, ok.stderr + (tmp_path / "worker.log").read_text()[-2000:]
    report = json.loads(run_producer(env, "report", "--format", "json").stdout)
    assert report["job"] == 1, "the refused submit must not have recorded a job"
    assert report["images"] == 2 and report["faces"] == 3
