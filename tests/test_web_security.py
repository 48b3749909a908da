"""Every bad input to the web service gets its clear 4xx JSON error and records nothing:
no job in the (real) database, no file left under the upload root. Then the token."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from emotion_batch.config import REPO_ROOT, Settings
from producer.web.app import create_app
from tests.conftest import database_for

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 60


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path):
    yield from database_for(request.param, request, tmp_path)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    (tmp_path / "library").mkdir()
    return Settings(
        _env_file=None,
        database_url=database_url,
        redis_url="redis://127.0.0.1:1/0",
        upload_root=tmp_path / "uploads",
        allowed_roots=[tmp_path / "library"],
        max_upload_bytes=3_000_000,
        max_file_bytes=1_000_000,
        max_zip_bytes=2_000_000,
        max_upload_files=5,
    )


@pytest.fixture
def client(settings: Settings):
    with TestClient(create_app(settings), base_url="http://127.0.0.1", raise_server_exceptions=False) as client:
        yield client


def _zip(entries: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name), data, zipfile.ZIP_DEFLATED)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16
            archive.writestr(info, target)
    return buffer.getvalue()


def _upload(client: TestClient, *files: tuple[str, bytes]):
    return client.post("/api/jobs/upload", files=[("files", (name, data)) for name, data in files])


BAD_UPLOADS = {
    "text file": ([("notes.jpg", b"just some text, named .jpg")], 415, "not an image"),
    "image and a zip": ([("a.jpg", JPEG), ("b.zip", _zip({"c.jpg": JPEG}))], 415, "not both"),
    "zip with ..": ([("up.zip", _zip({"ok.jpg": JPEG, "../evil.jpg": JPEG}))], 400, "outside the upload"),
    "zip with nested ..": ([("up.zip", _zip({"a/../../evil.jpg": JPEG}))], 400, "outside the upload"),
    "zip with absolute path": ([("abs.zip", _zip({"/tmp/evil.jpg": JPEG}))], 400, "outside the upload"),
    "zip with a drive": ([("win.zip", _zip({"C:\\evil.jpg": JPEG}))], 400, "outside the upload"),
    "zip with a link": ([("link.zip", _zip({"ok.jpg": JPEG}, {"passwd.jpg": "/etc/passwd"}))], 400, "is a link"),
    "zip bomb": ([("bomb.zip", _zip({f"{i}.jpg": JPEG + bytes(900_000) for i in range(3)}))], 413, "uncompressed"),
    "zip with a text file": ([("mixed.zip", _zip({"ok.jpg": JPEG, "notes.txt": b"hello"}))], 415, "not an image"),
    "broken zip": ([("broken.zip", b"PK\x03\x04" + b"\x00" * 100)], 400, "not a readable zip"),
    "too many files": ([(f"{i}.jpg", JPEG) for i in range(6)], 413, "at most 5"),
    "file too large": ([("big.jpg", JPEG + bytes(1_100_000))], 413, "larger than"),
    "request too large": ([("a.jpg", JPEG + bytes(900_000))] * 4, 413, "MAX_UPLOAD_BYTES"),
    "no file": ([], 422, "files"),
}


def _assert_nothing_recorded(client: TestClient, settings: Settings) -> None:
    assert client.get("/api/jobs").json()["total"] == 0
    assert not settings.upload_root.exists() or not any(settings.upload_root.iterdir())


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_upload_refused(case: str, client: TestClient, settings: Settings) -> None:
    files, status, words = BAD_UPLOADS[case]
    response = _upload(client, *files)
    assert response.status_code == status, response.text
    assert words in response.json()["error"] and response.json()["status"] == status
    _assert_nothing_recorded(client, settings)


def test_streamed_body_over_the_limit(client: TestClient, settings: Settings) -> None:
    """No Content-Length (chunked): the limit is enforced while the body streams in."""
    boundary = "xyz"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()

    def body():
        yield head + JPEG
        for _ in range(40):
            yield bytes(100_000)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(
        "/api/jobs/upload", content=body(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert response.status_code == 413 and "MAX_UPLOAD_BYTES" in response.json()["error"]
    _assert_nothing_recorded(client, settings)


def test_paths_outside_the_roots(client: TestClient, settings: Settings, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (settings.allowed_roots[0] / "escape").symlink_to(outside)
    for raw in (
        "/etc",
        str(outside),
        f"{settings.allowed_roots[0]}/../elsewhere",
        str(settings.allowed_roots[0] / "escape"),
        "library/relative",
        "/nonexistent/../etc",
    ):
        response = client.post("/api/jobs", json={"paths": [raw]})
        assert response.status_code == 403, (raw, response.text)
        assert "error" in response.json()
    missing = client.post("/api/jobs", json={"paths": [str(settings.allowed_roots[0] / "missing")]})
    assert missing.status_code == 404 and "not found" in missing.json()["error"]
    assert client.post("/api/jobs", json={"paths": ["\x00"]}).status_code == 400
    assert client.post("/api/jobs", json={"paths": []}).status_code == 422
    _assert_nothing_recorded(client, settings)


def test_broker_down_is_503_and_keeps_nothing(client: TestClient, settings: Settings) -> None:
    """A valid upload while Redis is unreachable: one clear 503, no job, no stored file."""
    response = _upload(client, ("a.jpg", JPEG))
    assert response.status_code == 503 and "error" in response.json()
    (settings.allowed_roots[0] / "a.jpg").write_bytes(JPEG)
    response = client.post("/api/jobs", json={"paths": [str(settings.allowed_roots[0])]})
    assert response.status_code == 503 and "error" in response.json()
    _assert_nothing_recorded(client, settings)


def test_unknown_things_are_404_and_bad_parameters_422(client: TestClient) -> None:
    for url in (
        "/api/jobs/99",
        "/api/jobs/99/report",
        "/api/jobs/99/faces",
        "/api/jobs/99/faces/1/thumbnail.jpg",
        "/api/jobs/99/images/1/annotated.jpg",
        "/jobs/99",
        "/api/jobs/99/events",
    ):
        response = client.get(url)
        assert response.status_code == 404 and response.json()["error"], url
    for url in (
        "/api/jobs/1/faces?emotion=bored",
        "/api/jobs/1/faces?min_percent=101",
        "/api/jobs/x",
        "/api/jobs/1/report?by=week",
        "/api/jobs/1/images/..%2F..%2Fetc%2Fpasswd/annotated.jpg",
    ):
        response = client.get(url)
        assert response.status_code in (404, 422) and response.json()["error"], url
    assert client.post("/api/jobs/99/resume").status_code == 404
    assert client.get("/static/../pyproject.toml").status_code == 404


def test_cross_site_posts_are_refused(client: TestClient, settings: Settings) -> None:
    """A page of another site cannot make a browser post an upload or a resume here."""
    for origin in ("http://evil.example", "null", "http://127.0.0.1:9999"):
        response = client.post("/api/jobs/upload", files=[("files", ("a.jpg", JPEG))], headers={"Origin": origin})
        assert response.status_code == 403 and "cross-site" in response.json()["error"], origin
        assert client.post("/api/jobs/1/resume", headers={"Origin": origin}).status_code == 403
    _assert_nothing_recorded(client, settings)
    same = client.post("/api/jobs", json={"paths": ["/etc"]}, headers={"Origin": "http://127.0.0.1"})
    assert same.status_code == 403 and "allowed roots" in same.json()["error"]  # past the origin check


def test_token_required_when_set(tmp_path: Path, database_url: str) -> None:
    settings = Settings(
        _env_file=None, database_url=database_url, web_token="s3cret-token", upload_root=tmp_path / "uploads"
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        assert client.get("/healthz").json() == {"ok": True}
        assert "s3cret-token" not in repr(settings)  # a SecretStr: never in logs or tracebacks
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            response = client.get("/api/jobs", headers=headers)
            assert response.status_code == 401 and "token" in response.json()["error"]
        assert _upload(client, ("notes.jpg", b"text")).status_code == 401  # refused before reading the upload
        assert client.get("/docs").status_code == 401
        page = client.get("/", headers={"Accept": "text/html"}, follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
        assert client.post("/login", data={"token": "nope"}).status_code == 401
        assert client.get("/api/jobs", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
        signed_in = client.post("/login", data={"token": "s3cret-token", "next": "/"}, follow_redirects=False)
        assert signed_in.status_code == 303 and "httponly" in signed_in.headers["set-cookie"].lower()
        assert client.get("/", headers={"Accept": "text/html"}).status_code == 200  # the cookie now


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_serve_refuses_to_listen_beyond_loopback_without_token(database_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "WEB_TOKEN"}
    result = subprocess.run(
        [sys.executable, "-m", "producer.cli", "serve", "--host", "0.0.0.0", "--port", "1"],
        env={**env, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert result.returncode != 0 and "WEB_TOKEN" in result.stderr and "Traceback" not in result.stderr
