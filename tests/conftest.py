"""Shared fixtures: real redis-server, real Celery worker processes, real SQLite files,
and the data in ../shared (skipped locally when absent, failing under CI=true)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from emotion_batch.config import REPO_ROOT

SHARED = Path(os.environ.get("SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(condition: bool, reason: str) -> None:
    """Skip when a local prerequisite is missing; under CI it is a failure."""
    if not condition:
        if IN_CI:
            pytest.fail(f"CI requires: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    need(SHARED.is_dir(), f"shared data folder {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def photos_dir(shared_data: Path) -> Path:
    path = shared_data / "photos"
    need(path.is_dir(), f"real face photos in {path}")
    return path


@pytest.fixture(scope="session")
def deepface_home(shared_data: Path) -> Path:
    path = shared_data / "deepface"
    need((path / ".deepface" / "weights").is_dir(), f"DEEPFACE_HOME at {path}")
    return path


@pytest.fixture(scope="session")
def yunet_model(shared_data: Path) -> Path:
    path = shared_data / "detectors" / "face_detection_yunet_2023mar.onnx"
    need(path.is_file(), f"YuNet model {path}")
    return path


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A private redis-server on loopback for the whole test session."""
    need(shutil.which("redis-server") is not None, "redis-server (apt-get install redis-server)")
    from producer.local import LocalRedis

    server = LocalRedis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def private_redis(tmp_path: Path):
    """A redis-server of this test's own: its queues start empty and nothing else reads them."""
    need(shutil.which("redis-server") is not None, "redis-server (apt-get install redis-server)")
    from producer.local import LocalRedis

    server = LocalRedis(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """URL of the PostgreSQL server in TEST_POSTGRES_URL (`bash scripts/postgres start DIR`)."""
    from tests.pg_support import server_url

    url = server_url()
    need(url is not None, "a PostgreSQL server at TEST_POSTGRES_URL (bash scripts/postgres start DIR)")
    return url


def database_for(kind: str, request: pytest.FixtureRequest, tmp_path: Path):
    """A fresh database of `kind` ("sqlite" file or "postgresql" database) for one test."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'emotion.db'}"
        return
    from tests.pg_support import fresh_database

    with fresh_database(request.getfixturevalue("postgres_server")) as url:
        yield url


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path):
    """The test's database: SQLite unless a module overrides this fixture with params."""
    yield from database_for(getattr(request, "param", "sqlite"), request, tmp_path)


def process_env(
    database_url: str, deepface_home: Path, yunet_model: Path, backends: list[str], **extra: str
) -> dict[str, str]:
    """Environment for worker and producer processes: the database, the models, the
    backends workers load, TensorFlow's start-up chatter off, and `extra` settings."""
    return {
        "DATABASE_URL": database_url,
        "DEEPFACE_HOME": str(deepface_home),
        "YUNET_MODEL": str(yunet_model),
        "WORKER_BACKENDS": json.dumps(backends),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **extra,
    }


@pytest.fixture
def worker_env(tmp_path: Path, deepface_home: Path, yunet_model: Path, database_url: str) -> dict[str, str]:
    """Environment for worker and producer processes of one test."""
    return process_env(database_url, deepface_home, yunet_model, ["cnn", "deepface"])


def run_producer(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real `producer` CLI in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "producer.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
    )
