"""Faults against the real web service: `producer serve` in its own process on loopback,
with a real redis-server and a real SQLite file. Half-written uploads, a locked
database, a full upload folder, a broker that is down and a background scan that fails
each get a clear 503 or a recorded error (never a 500 or a traceback), and leave nothing
half-done behind (issue 24, minor items)."""

from __future__ import annotations

import html
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import redis

from producer.local import LocalRedis
from tests.web_hostile_support import (
    assert_no_traceback,
    photo,
    serve,
    served,  # noqa: F401 (a fixture)
    stored_files,
)

pytestmark = pytest.mark.integration


def test_half_written_uploads_are_removed_at_start(tmp_path: Path, redis_server, photos_dir: Path) -> None:
    """An upload is stored under a `.partial-` name until complete: what a server killed
    mid-write left is removed when the next one starts; finished uploads are kept."""
    server = serve(tmp_path, redis_server.url)
    try:
        created = server.http.post("/api/jobs/upload", files=[("files", ("kept.jpg", photo(photos_dir)))])
        assert created.status_code == 201, created.text
    finally:
        server.process.kill()  # as `kill -9`
        server.process.wait(timeout=30)
    kept = stored_files(server)
    assert [p.name for p in kept] == ["kept.jpg"] and not kept[0].parent.name.startswith(".partial-")
    left = server.uploads / ".partial-20261207-120000-deadbeef"
    (left / "sub").mkdir(parents=True)
    (left / "sub" / "half.jpg").write_bytes(photo(photos_dir)[:1000])
    again = serve(tmp_path, redis_server.url)
    try:
        assert not left.exists() and stored_files(again) == kept
        assert again.http.get("/api/jobs").json()["total"] == 1
    finally:
        again.stop()


def test_database_locked_past_its_timeout_is_503(tmp_path: Path, redis_server, photos_dir: Path) -> None:
    """Another process holds SQLite's write lock past the busy timeout: a path job and an
    upload answer 503 with Retry-After (nothing recorded, no file kept), then work."""
    (tmp_path / "library" / "party").mkdir(parents=True)
    (tmp_path / "library" / "party" / "a.jpg").write_bytes(photo(photos_dir))
    server = serve(tmp_path, redis_server.url, DATABASE_URL=f"sqlite:///{tmp_path / 'web.db'}?timeout=1")
    try:
        holder = sqlite3.connect(server.database, timeout=5, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        locked = [
            server.http.post("/api/jobs", json={"paths": [str(tmp_path / "library" / "party")]}),
            server.http.post("/api/jobs/upload", files=[("files", ("b.jpg", photo(photos_dir)))]),
        ]
        for response in locked:
            assert response.status_code == 503, response.text
            assert "locked" in response.json()["error"] and response.headers["retry-after"].isdigit()
        assert time.monotonic() - started < 30
        holder.execute("ROLLBACK")
        holder.close()
        assert stored_files(server) == [] and server.http.get("/api/jobs").json()["total"] == 0
        assert server.http.post("/api/jobs/upload", files=[("files", ("b.jpg", photo(photos_dir)))]).status_code == 201
    finally:
        server.stop()
    assert_no_traceback(server)


def test_full_upload_folder_is_503_and_cleaned(tmp_path: Path, redis_server, photos_dir: Path) -> None:
    """UPLOAD_ROOT on a nearly full file system (a 256 KiB tmpfs): 503 'the upload folder
    is full', nothing left in it, no job."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        server = serve(tmp_path, redis_server.url, UPLOAD_ROOT=str(small))
        try:
            files = [("files", (f"{i}.jpg", photo(photos_dir))) for i in range(8)]  # ~100 KB each
            response = server.http.post("/api/jobs/upload", files=files)
            assert response.status_code == 503, response.text
            assert "upload folder is full" in response.json()["error"] and "retry-after" in response.headers
            assert list(small.iterdir()) == [] and server.http.get("/api/jobs").json()["total"] == 0
        finally:
            server.stop()
        assert_no_traceback(server)
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_resume_with_the_broker_down_is_503(tmp_path: Path, photos_dir: Path) -> None:
    """The API's resume answers 503 as submit does when Redis is away or refuses the password."""
    own = LocalRedis(tmp_path / "redis", password="right-password").start()
    try:
        server = serve(tmp_path, own.url)
        created = server.http.post("/api/jobs/upload", files=[("files", ("a.jpg", photo(photos_dir)))])
        assert created.status_code == 201, created.text
        job = created.json()["job"]
        server.stop()
        for url in (own.url.replace("right-password", "wrong"), "redis://127.0.0.1:1/0"):
            server = serve(tmp_path, url)
            try:
                response = server.http.post(f"/api/jobs/{job}/resume")
                assert response.status_code == 503, response.text
                assert "broker" in response.json()["error"] and "retry-after" in response.headers
            finally:
                server.stop()
            assert_no_traceback(server)
    finally:
        own.stop()


def test_failed_background_scan_is_recorded_and_shown(tmp_path: Path, photos_dir: Path) -> None:
    """Redis accepts connections but refuses writes: the path job's background scan stops,
    and the job says so (status, job page) instead of `scanning` for ever; resume clears it."""
    library = tmp_path / "library" / "party"
    library.mkdir(parents=True)
    for i in range(3):
        (library / f"{i}.jpg").write_bytes(photo(photos_dir) + bytes([i]))
    own = LocalRedis(tmp_path / "redis").start()
    server = serve(tmp_path, own.url)
    try:
        broker = redis.Redis.from_url(own.url)
        broker.config_set("maxmemory-policy", "noeviction")
        broker.config_set("maxmemory", 1)
        created = server.http.post("/api/jobs", json={"paths": [str(library)]})
        assert created.status_code == 202, created.text
        job = created.json()["job"]
        deadline = time.monotonic() + 60
        while (status := server.http.get(f"/api/jobs/{job}").json())["scan_error"] is None:
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        assert status["scanning"] is False and status["complete"] is False
        assert "scan stopped" in status["scan_error"] and "resume" in status["scan_error"]
        assert status["scan_error"] in html.unescape(server.http.get(f"/jobs/{job}").text)
        broker.config_set("maxmemory", 0)
        assert server.http.post(f"/api/jobs/{job}/resume").status_code == 200
        status = server.http.get(f"/api/jobs/{job}").json()
        assert status["scan_error"] is None and status["total"] == 3 and status["pending"] == 3
    finally:
        server.stop()
        own.stop()
