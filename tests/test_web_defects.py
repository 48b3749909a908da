"""Issue 24's defects of the web service, against `producer serve` in its own process
over real HTTP on loopback, without a token (the default mode), with a private
redis-server and a SQLite file: DNS rebinding (a foreign Host), an upload whose job is
recorded while Redis refuses writes (files and job kept together, resumable), and
links out of the allowed roots (refused at scan time and again when a photo is served)."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import select

from db.schema import Image
from db.session import make_session_factory
from emotion_batch.config import REPO_ROOT
from producer.local import LocalRedis, free_port
from tests.conftest import need
from tests.test_web_browser import start_serve

pytestmark = pytest.mark.integration


class Served:
    """One test's `producer serve` (no token), its redis-server and its folders."""

    def __init__(self, tmp: Path, base_env: dict[str, str]) -> None:
        need(shutil.which("redis-server") is not None, "redis-server")
        self.tmp, self.port = tmp, free_port()
        self.library, self.uploads = tmp / "library", tmp / "uploads"
        self.library.mkdir()
        self.redis = LocalRedis(tmp / "redis").start()
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "WEB_TOKEN"},
            **base_env,
            "REDIS_URL": self.redis.url,
            "UPLOAD_ROOT": str(self.uploads),
            "ALLOWED_ROOTS": f'["{self.library}"]',
            "WEB_ALLOWED_HOSTS": '["photos.lan"]',
        }
        args = ["--port", str(self.port)]
        self.process, self.url = start_serve(args, self.env, REPO_ROOT, tmp / "serve.log", self.port)
        self.http = httpx.Client(base_url=self.url, timeout=120)

    def images(self, job_id: int) -> dict[str, Image]:
        with make_session_factory(self.env["DATABASE_URL"])() as session:
            rows = session.scalars(select(Image).where(Image.job_id == job_id)).all()
            return {"/".join(Path(row.path).parts[-2:]): row for row in rows}  # folder/name

    def wait_scanned(self, job_id: int, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.http.get(f"/api/jobs/{job_id}").json()
            if not body["scanning"]:
                return body
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} still scanning: {self.log()}")

    def log(self) -> str:
        return (self.tmp / "serve.log").read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        self.http.close()
        self.process.terminate()
        self.process.wait(timeout=30)
        self.redis.stop()


@pytest.fixture
def served(tmp_path: Path, worker_env: dict[str, str]):
    server = Served(tmp_path, worker_env)
    yield server
    server.stop()


def test_foreign_host_names_are_refused_without_a_token(served: Served, photos_dir: Path) -> None:
    """DNS rebinding: a page of evil.example whose name now resolves to 127.0.0.1 sends
    `Host: evil.example:PORT` and a matching Origin; nothing is served or recorded."""
    evil = f"evil.example:{served.port}"
    foreign = {"Host": evil, "Origin": f"http://{evil}"}
    photo = (photos_dir / "img1.jpg").read_bytes()
    upload = served.http.post("/api/jobs/upload", files=[("files", ("a.jpg", photo))], headers=foreign)
    assert upload.status_code == 403 and "WEB_TOKEN" in upload.json()["error"], upload.text
    for path in ("/api/jobs", "/api/jobs/1/faces/1/thumbnail.jpg", "/", "/docs"):
        response = served.http.get(path, headers={"Host": evil})
        assert response.status_code == 403, (path, response.text)
    assert served.http.get("/api/jobs", headers={"Host": "127.0.0.1.evil.example"}).status_code == 403
    assert served.http.get("/api/jobs", headers={"Host": "[::1"}).status_code == 403  # not a host name
    for host in (f"127.0.0.1:{served.port}", f"localhost:{served.port}", f"[::1]:{served.port}", "LOCALHOST"):
        assert served.http.get("/api/jobs", headers={"Host": host}).json()["total"] == 0, host
    listed = {"Host": f"photos.lan:{served.port}", "Origin": f"http://photos.lan:{served.port}"}  # WEB_ALLOWED_HOSTS
    created = served.http.post("/api/jobs/upload", files=[("files", ("a.jpg", photo))], headers=listed)
    assert created.status_code == 201, created.text
    assert served.http.get("/api/jobs").json()["total"] == 1


def test_upload_recorded_while_redis_refuses_writes_keeps_its_files_and_resumes(
    served: Served, photos_dir: Path
) -> None:
    """The job row is committed, then publishing fails (Redis at maxmemory, noeviction):
    the answer names the job, its files stay, and resume queues every image."""
    broker = redis.Redis.from_url(served.redis.url)
    photos = sorted(photos_dir.glob("*.jpg"))[:3]
    broker.config_set("maxmemory-policy", "noeviction")
    broker.config_set("maxmemory", 1)
    try:
        files = [("files", (p.name, p.read_bytes())) for p in photos]
        response = served.http.post("/api/jobs/upload", files=files)
    finally:
        broker.config_set("maxmemory", 0)
    assert response.status_code == 503, response.text
    body = response.json()
    job = body["job"]
    assert f"/api/jobs/{job}/resume" in body["error"] and "Traceback" not in response.text
    stored = [p for p in served.uploads.rglob("*") if p.is_file()]
    assert sorted(p.name for p in stored) == sorted(p.name for p in photos)  # kept with their job
    rows = served.images(job)
    assert {k.split("/")[1] for k in rows} == {p.name for p in photos}
    assert all(Path(r.path).is_file() for r in rows.values())

    resumed = served.http.post(f"/api/jobs/{job}/resume")
    assert resumed.status_code == 200, resumed.text
    state = served.wait_scanned(job)
    assert (state["total"], state["pending"]) == (3, 3)
    assert broker.llen("emotion") >= 1  # the batches are on the queue now


def test_links_out_of_the_allowed_roots_are_refused_at_scan_and_at_serve_time(served: Served, photos_dir: Path) -> None:
    photos = sorted(photos_dir.glob("*.jpg"))
    private = served.tmp / "outside" / "private"
    private.mkdir(parents=True)
    shutil.copy(photos[1], private / "secret.jpg")
    shutil.copy(photos[2], private / "real.jpg")  # what the album's name will lead to later
    album = served.library / "album"
    album.mkdir()
    shutil.copy(photos[0], album / "real.jpg")
    (served.library / "escape").symlink_to(private)  # a folder link out of the roots
    (album / "alias.jpg").symlink_to(private / "secret.jpg")  # a file link out of the roots

    created = served.http.post("/api/jobs", json={"paths": [str(served.library)]})
    assert created.status_code == 202, created.text
    job = created.json()["job"]
    served.wait_scanned(job)
    rows = served.images(job)
    secret = hashlib.sha256((private / "secret.jpg").read_bytes()).hexdigest()
    for name in ("escape/secret.jpg", "album/alias.jpg", "escape/real.jpg"):  # through a folder or file link
        assert rows[name].status == "failed" and "outside allowed roots" in (rows[name].error or "")
        assert rows[name].sha256 != secret  # never read, so never matched to an earlier result
    assert rows["album/real.jpg"].status == "pending"
    for name in ("escape/secret.jpg", "album/alias.jpg"):
        refused = served.http.get(f"/api/jobs/{job}/images/{rows[name].id}/annotated.jpg")
        assert refused.status_code == 403 and "outside the allowed roots" in refused.json()["error"], refused.text
    real = f"/api/jobs/{job}/images/{rows['album/real.jpg'].id}/annotated.jpg"
    assert served.http.get(real).headers["content-type"] == "image/jpeg"

    # Later the album becomes a link out of the roots: the recorded path now leads there.
    shutil.rmtree(album)
    album.symlink_to(private)
    refused = served.http.get(real)
    assert refused.status_code == 403 and refused.headers["content-type"].startswith("application/json")


def test_report_faces_are_cropped_only_from_photos_inside_the_roots(tmp_path: Path, photos_dir: Path) -> None:
    """The HTML report's face crops (also served by the API's report) resolve each photo
    again: one whose folder has become a link out of the roots is left out."""
    from db.faces import FaceRow
    from producer.thumbnails import face_thumbnails

    library, outside = tmp_path / "library", tmp_path / "outside"
    (library / "album").mkdir(parents=True)
    outside.mkdir()
    shutil.copy(photos_dir / "img1.jpg", library / "album" / "a.jpg")
    shutil.copy(photos_dir / "img12.jpg", outside / "b.jpg")
    (library / "moved").symlink_to(outside)
    faces = [
        FaceRow(1, str(library / "album" / "a.jpg"), 10, 10, 80, 80, "happy", 90.0),
        FaceRow(2, str(library / "moved" / "b.jpg"), 10, 10, 80, 80, "happy", 80.0),
    ]
    crops = face_thumbnails(faces, 40_000_000, 100_000_000, [library])
    assert len(crops["happy"]) == 1 and "a.jpg" in crops["happy"][0].caption
    assert len(face_thumbnails(faces, 40_000_000, 100_000_000)["happy"]) == 2  # no roots: anywhere
