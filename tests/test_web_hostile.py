"""Hostile input against the real web service: `producer serve` in its own process on
loopback, spoken to over real HTTP and raw sockets, with a real redis-server and a real
SQLite file. Every case gets a clear 4xx (never a 500 or a traceback): ids beyond 64
bits, names the filesystem cannot hold, zip limits, slow clients, too many connections,
a blank token (issue 24, minor items). The faults (503s) are test_web_faults'."""

from __future__ import annotations

import io
import os
import socket
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from emotion_batch.config import REPO_ROOT
from producer.local import free_port, memory_kb
from tests.web_hostile_support import (
    BIG,
    Served,
    assert_no_traceback,
    photo,
    serve,
    served,  # noqa: F401 (a fixture)
    stored_files,
    zip_of,
)

pytestmark = pytest.mark.integration


def test_ids_offsets_and_pages_beyond_64_bits_are_422(served: Served) -> None:
    """Every route taking an id, offset or page number: 2**63 is refused as invalid
    (the databases' integers stop at 2**63 - 1), not a 500 from an OverflowError."""
    gets = (
        f"/api/jobs/{BIG}",
        f"/api/jobs/{BIG}/events",
        f"/api/jobs/{BIG}/report",
        f"/api/jobs/{BIG}/faces",
        f"/api/jobs/1/faces?offset={BIG}",
        f"/api/jobs?offset={BIG}",
        f"/api/jobs/1/images/{BIG}/annotated.jpg",
        f"/api/jobs/1/faces/{BIG}/thumbnail.jpg",
        f"/api/jobs/{BIG}/charts/share-over-time.png",
        f"/jobs/{BIG}",
        f"/jobs/{BIG}/faces",
        f"/jobs/1/faces?page={BIG}",
        f"/jobs/1/images/{BIG}",
        f"/?page={BIG}",
    )
    for url in gets:
        response = served.http.get(url)
        assert response.status_code == 422, (url, response.status_code, response.text)
        assert response.json()["status"] == 422
    for url in (f"/api/jobs/{BIG}/resume", f"/api/jobs/{BIG}/retry-failed"):
        response = served.http.post(url)
        assert response.status_code == 422, (url, response.text)
    assert served.http.get(f"/api/jobs/{BIG - 1}").status_code == 404  # the largest id is only unknown
    assert_no_traceback(served)


def test_upload_names_the_filesystem_cannot_hold(served: Served, photos_dir: Path) -> None:
    """Names of 200 accented letters or 100 emoji (over 255 bytes), a 300-byte zip entry
    name: stored under names cut to 255 bytes. A zip holding a file `a` and `a/b.jpg`: 400."""
    jpeg = photo(photos_dir)
    for name in ("é" * 200 + ".jpg", "😀" * 100 + ".jpg"):
        response = served.http.post("/api/jobs/upload", files=[("files", (name, jpeg))])
        assert response.status_code == 201, response.text
    long_entry = "d" * 120 + "/" + "ü" * 150 + ".jpg"  # a 300-byte file name in a folder
    response = served.http.post("/api/jobs/upload", files=[("files", ("long.zip", zip_of({long_entry: jpeg})))])
    assert response.status_code == 201, response.text
    stored = stored_files(served)
    assert len(stored) == 3 and all(len(p.name.encode()) <= 255 and p.suffix == ".jpg" for p in stored)
    assert {p.name[0] for p in stored} == {"é", "😀", "ü"}

    before = stored_files(served)
    for entries in ({"a": jpeg, "a/b.jpg": jpeg}, {"a/b.jpg": jpeg, "a": jpeg}):
        response = served.http.post("/api/jobs/upload", files=[("files", ("clash.zip", zip_of(entries)))])
        assert response.status_code == 400 and "clashes" in response.json()["error"], response.text
    assert stored_files(served) == before and served.http.get("/api/jobs").json()["total"] == 3
    assert_no_traceback(served)


def test_every_zip_entry_counts_against_the_limit(served: Served, photos_dir: Path) -> None:
    """MAX_UPLOAD_FILES=10: a zip of 400,000 folder entries and one photo is refused from
    its end record, before zipfile holds the directory in memory (it grew the server by
    about 200 MB); nothing stored, no job."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for i in range(400_000):
            archive.writestr(zipfile.ZipInfo(f"folder-{i}/"), b"")
        archive.writestr(zipfile.ZipInfo("face.jpg"), photo(photos_dir))
    peak = memory_kb(served.process.pid)["VmHWM"]
    response = served.http.post("/api/jobs/upload", files=[("files", ("folders.zip", buffer.getvalue()))])
    assert response.status_code == 413, response.text
    assert "400001 entries" in response.json()["error"] and "at most 10" in response.json()["error"]
    assert memory_kb(served.process.pid)["VmHWM"] - peak < 50_000  # KiB
    twelve = {f"f{i}/": b"" for i in range(11)} | {"face.jpg": photo(photos_dir)}
    response = served.http.post("/api/jobs/upload", files=[("files", ("twelve.zip", zip_of(twelve)))])
    assert response.status_code == 413 and "12 entries" in response.json()["error"]
    assert stored_files(served) == [] and served.http.get("/api/jobs").json()["total"] == 0


def test_security_headers_and_no_store_photos(tmp_path: Path, redis_server, photos_dir: Path) -> None:
    """Every page and answer carries a CSP, nosniff and DENY framing and a Cache-Control;
    photos and face crops are `no-store` unless WEB_CACHE_PHOTOS opts in."""
    server = serve(tmp_path, redis_server.url)
    try:
        created = server.http.post("/api/jobs/upload", files=[("files", ("me.jpg", photo(photos_dir)))])
        assert created.status_code == 201, created.text
        job = created.json()["job"]
        image = sqlite3.connect(server.database).execute("SELECT id FROM images").fetchone()[0]
        for url in ("/", "/jobs/new", f"/jobs/{job}", "/api/jobs", "/healthz", "/api/jobs/999", "/docs"):
            response = server.http.get(url)
            headers = response.headers
            assert "frame-ancestors 'none'" in headers["content-security-policy"], url
            assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY", url
            assert headers["cache-control"] == "no-store", url
        page_policy = server.http.get("/").headers["content-security-policy"]
        assert "script-src 'self';" in page_policy and "unsafe-inline" not in page_policy.split("script-src")[1][:20]
        assert "javascript:" not in server.http.get(f"/jobs/{job}/images/{image}").text  # nothing CSP would block
        assert server.http.get("/static/app.js").headers["cache-control"] == "no-cache"
        drawn = server.http.get(f"/api/jobs/{job}/images/{image}/annotated.jpg")
        assert drawn.status_code == 200 and drawn.headers["cache-control"] == "no-store"
    finally:
        server.stop()
    opted = serve(tmp_path, redis_server.url, WEB_CACHE_PHOTOS="600")
    try:
        drawn = opted.http.get(f"/api/jobs/{job}/images/{image}/annotated.jpg")
        assert drawn.headers["cache-control"] == "private, max-age=600"
    finally:
        opted.stop()


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closes `sock` (or answers and closes) within `seconds`."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_slow_headers_and_stalled_bodies_are_cut_off(tmp_path: Path, redis_server, photos_dir: Path) -> None:
    """Slowloris (200 connections trickling header bytes, or sending none) is closed after
    WEB_HEADER_TIMEOUT; a stalled upload gets 408 after WEB_BODY_TIMEOUT; meanwhile the
    service answers, and nothing of the stalled upload is kept."""
    server = serve(tmp_path, redis_server.url, WEB_HEADER_TIMEOUT="2", WEB_BODY_TIMEOUT="2")
    try:
        port = int(server.url.rsplit(":", 1)[1])
        slow = []
        for i in range(200):
            sock = socket.create_connection(("127.0.0.1", port))
            if i % 2:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never the blank line
            slow.append(sock)
        started = time.monotonic()
        for sock in slow[1::2]:
            sock.sendall(b"X-Slow: 1\r\n")  # a trickle does not extend the deadline
        assert server.http.get("/healthz").status_code == 200  # still serving
        assert all(_closed_within(sock, 10) for sock in slow)
        assert time.monotonic() - started < 12
        for sock in slow:
            sock.close()

        body = b'--b\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\n\r\n' + photo(photos_dir)
        stalled = socket.create_connection(("127.0.0.1", port))
        stalled.sendall(
            b"POST /api/jobs/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n"
            + f"Content-Length: {len(body) + 1000}\r\n\r\n".encode()
            + body[:2000]
        )
        stalled.settimeout(15)
        answer = b""
        while not answer.endswith(b"}") and (chunk := stalled.recv(4096)):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b"stalled" in answer
        stalled.close()
        assert stored_files(server) == [] and server.http.get("/api/jobs").json()["total"] == 0
    finally:
        server.stop()
    assert_no_traceback(server)


def test_connections_beyond_the_limit_are_closed_as_they_open(tmp_path: Path, redis_server) -> None:
    """WEB_MAX_CONNECTIONS=20: of 40 idle connections, 20 are closed at once (file
    descriptors stay bounded whatever the header deadline); once they go, it serves again."""
    server = serve(tmp_path, redis_server.url, WEB_MAX_CONNECTIONS="20", WEB_HEADER_TIMEOUT="30")
    try:
        port = int(server.url.rsplit(":", 1)[1])
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
        closed = [sock for sock in idle if _closed_within(sock, 0.5)]
        assert 19 <= len(closed) <= 21, len(closed)  # +-1: start_serve's own probe may still be closing
        for sock in idle:
            sock.close()
        time.sleep(0.5)
        assert server.http.get("/healthz").status_code == 200
    finally:
        server.stop()
    assert_no_traceback(server)


def test_blank_web_token_is_refused(tmp_path: Path) -> None:
    """WEB_TOKEN of spaces only: `serve` refuses to start (beyond loopback or not) in one line."""
    for host in ("0.0.0.0", "127.0.0.1"):
        result = subprocess.run(
            [sys.executable, "-m", "producer.cli", "serve", "--host", host, "--port", str(free_port())],
            env={**os.environ, "WEB_TOKEN": "   ", "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"},
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            timeout=120,
        )
        assert result.returncode != 0 and "WEB_TOKEN is blank" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
