"""What the hostile-input and fault tests of the web service share: `producer serve`
started in its own process (with its log and upload folder), a photo, zips built in
memory, and the checks that nothing was left stored and no traceback was logged."""

from __future__ import annotations

import io
import os
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from emotion_batch.config import REPO_ROOT
from producer.local import free_port
from tests.test_web_browser import start_serve

BIG = 2**63


class Served:
    """One `producer serve` process and what it was started with."""

    def __init__(self, url: str, process: subprocess.Popen, env: dict[str, str], tmp: Path, log: Path) -> None:
        self.url, self.process, self.env, self.tmp, self.log = url, process, env, tmp, log
        self.http = httpx.Client(base_url=url, timeout=60)

    @property
    def uploads(self) -> Path:
        return Path(self.env["UPLOAD_ROOT"])

    @property
    def database(self) -> Path:
        return Path(self.env["DATABASE_URL"].removeprefix("sqlite:///").partition("?")[0])

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def serve(tmp: Path, redis_url: str, **env: str) -> Served:
    """`producer serve` on a free loopback port, SQLite in `tmp`, uploads in `tmp/uploads`."""
    (tmp / "library").mkdir(exist_ok=True)
    port = free_port()
    full = {
        **{k: v for k, v in os.environ.items() if k != "WEB_TOKEN"},
        "DATABASE_URL": f"sqlite:///{tmp / 'web.db'}",
        "REDIS_URL": redis_url,
        "UPLOAD_ROOT": str(tmp / "uploads"),
        "ALLOWED_ROOTS": f'["{tmp / "library"}"]',
        "MAX_UPLOAD_FILES": "10",
        **env,
    }
    log = tmp / f"serve-{port}.log"
    process, url = start_serve(["--port", str(port)], full, REPO_ROOT, log, port)
    return Served(url, process, full, tmp, log)


@pytest.fixture
def served(tmp_path: Path, redis_server) -> Iterator[Served]:
    server = serve(tmp_path, redis_server.url)
    yield server
    server.stop()


def photo(photos_dir: Path) -> bytes:
    return (photos_dir / "img1.jpg").read_bytes()


def zip_of(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name), data)
    return buffer.getvalue()


def stored_files(server: Served) -> list[Path]:
    return sorted(p for p in server.uploads.rglob("*") if p.is_file()) if server.uploads.exists() else []


def assert_no_traceback(server: Served) -> None:
    assert "Traceback" not in server.log.read_text(errors="replace")
