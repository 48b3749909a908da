"""The web API with real parts: the FastAPI app (in process, httpx) on a real SQLite file
or PostgreSQL database, a real redis-server and a real Celery worker process; the report
compared with the real CLI's output."""

from __future__ import annotations

import csv
import io
import json
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from emotion_batch.config import Settings
from emotion_batch.labels import EMOTIONS
from producer.local import LocalWorker
from producer.web.app import create_app
from tests.conftest import database_for, run_producer

pytestmark = pytest.mark.integration
PHOTOS = ("couple.jpg", "img1.jpg", "img2.jpg", "img3.jpg", "selfie-many-people.jpg")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path):
    yield from database_for(request.param, request, tmp_path)


def web_settings(tmp_path: Path, worker_env: dict[str, str], redis_url: str, **extra) -> Settings:
    return Settings(
        _env_file=None,
        database_url=worker_env["DATABASE_URL"],
        redis_url=redis_url,
        upload_root=tmp_path / "uploads",
        allowed_roots=[tmp_path / "library"],
        yunet_model=worker_env["YUNET_MODEL"],
        deepface_home=worker_env["DEEPFACE_HOME"],
        **extra,
    )


def upload_files(photos_dir: Path) -> list[tuple[str, tuple[str, bytes, str]]]:
    """Five real face photos and one truncated JPEG, as multipart parts."""
    files = [("files", (name, (photos_dir / name).read_bytes(), "image/jpeg")) for name in PHOTOS]
    broken = (photos_dir / "img4.jpg").read_bytes()
    files.append(("files", ("broken.jpg", broken[: len(broken) // 3], "image/jpeg")))
    return files


def wait_for(client: TestClient, job: int, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/api/jobs/{job}").json()
        if status["complete"]:
            return status
        time.sleep(0.5)
    raise AssertionError(f"job {job} not finished: {status}")


@pytest.fixture
def live(tmp_path: Path, redis_server, worker_env: dict[str, str]):
    env = {**worker_env, "REDIS_URL": redis_server.url}
    settings = web_settings(tmp_path, worker_env, redis_server.url)
    with LocalWorker(env, concurrency=1, name=f"web-{tmp_path.name}", log_file=tmp_path / "worker.log"):
        with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
            yield client, env, settings


def _check_report_as_the_cli_prints_it(client, env: dict[str, str], job: int, status: dict) -> dict:
    """The report: the very JSON and CSV the CLI prints, and the Parquet and HTML forms."""
    for by in ("job", "folder", "date", "video"):
        api = client.get(f"/api/jobs/{job}/report", params={"by": by})
        cli = run_producer(env, "report", str(job), "--by", by, "--format", "json")
        assert cli.returncode == 0, cli.stderr
        assert api.json() == json.loads(cli.stdout), by
    report = client.get(f"/api/jobs/{job}/report", params={"by": "folder"}).json()
    assert report["faces"] == status["faces"] and report["failed"] == 1
    csv_text = client.get(f"/api/jobs/{job}/report", params={"by": "folder", "format": "csv"})
    assert csv_text.headers["content-type"].startswith("text/csv")
    cli_csv = run_producer(env, "report", str(job), "--by", "folder", "--format", "csv")
    assert (
        csv_text.text.replace("\r\n", "\n").strip() == cli_csv.stdout.strip()
    )  # the CLI test reads universal newlines
    rows = list(csv.DictReader(io.StringIO(csv_text.text)))
    assert rows[0]["group"] == "(all)" and int(rows[0]["faces"]) == report["faces"]
    parquet = pd.read_parquet(
        io.BytesIO(client.get(f"/api/jobs/{job}/report", params={"format": "parquet", "by": "folder"}).content)
    )
    assert int(parquet.loc[parquet["group"] == "(all)", "faces"].iloc[0]) == report["faces"]
    html = client.get(f"/api/jobs/{job}/report", params={"format": "html"})
    assert html.status_code == 200 and "<html" in html.text and "data:image/png;base64," in html.text
    return report


def _check_faces_filtered_and_paged(client, job: int, report: dict) -> tuple[list[dict], str]:
    """Faces: all of them, then filtered, then paged; returns them and the commonest emotion."""
    everything = client.get(f"/api/jobs/{job}/faces", params={"limit": 500}).json()
    assert everything["total"] == report["faces"] == len(everything["faces"])
    percents = [f["percent"] for f in everything["faces"]]
    assert percents == sorted(percents, reverse=True)
    for face in everything["faces"]:
        assert face["dominant"] in EMOTIONS and abs(sum(face["emotion"].values()) - 100) < 0.5
        assert face["percent"] == pytest.approx(face["emotion"][face["dominant"]])
    commonest = max(report["dominant"], key=report["dominant"].get)
    only = client.get(f"/api/jobs/{job}/faces", params={"emotion": commonest, "limit": 500}).json()
    assert only["total"] == report["dominant"][commonest] and {f["dominant"] for f in only["faces"]} == {commonest}
    threshold = sorted(percents)[len(percents) // 2]
    sure = client.get(f"/api/jobs/{job}/faces", params={"min_percent": threshold, "limit": 500}).json()
    assert sure["total"] == sum(p >= threshold for p in percents) and all(
        f["percent"] >= threshold for f in sure["faces"]
    )
    first, second = (client.get(f"/api/jobs/{job}/faces", params={"limit": 3, "offset": o}).json() for o in (0, 3))
    assert [f["id"] for f in first["faces"] + second["faces"]] == [f["id"] for f in everything["faces"][:6]]
    return everything["faces"], commonest


def _check_annotated_and_cropped(client, job: int, photos_dir: Path, faces: list[dict]) -> dict:
    """One image with its boxes drawn, and one face cropped; returns the couple's face."""
    couple = next(f for f in faces if f["path"].endswith("couple.jpg"))
    drawn = client.get(couple["links"]["annotated"])
    assert drawn.status_code == 200 and drawn.headers["content-type"] == "image/jpeg"
    picture = Image.open(io.BytesIO(drawn.content))
    assert picture.size == Image.open(photos_dir / "couple.jpg").size
    box = couple["box"]
    edge = picture.convert("RGB").getpixel((box["x"] + box["w"] // 2, box["y"] + box["h"] - 1))
    assert edge != Image.open(photos_dir / "couple.jpg").convert("RGB").getpixel(
        (box["x"] + box["w"] // 2, box["y"] + box["h"] - 1)
    )
    thumb = client.get(couple["links"]["thumbnail"])
    assert thumb.status_code == 200 and Image.open(io.BytesIO(thumb.content)).size[0] <= 160
    other_job_image = client.get(f"/api/jobs/{job + 1}/images/{couple['image_id']}/annotated.jpg")
    assert other_job_image.status_code == 404 and "error" in other_job_image.json()
    assert client.get(f"/api/jobs/{job}/charts/emotions-by-folder.png").content[:8] == b"\x89PNG\r\n\x1a\n"
    return couple


def test_upload_wait_report_faces_annotated(live, photos_dir: Path, tmp_path: Path) -> None:
    client, env, settings = live
    created = client.post(
        "/api/jobs/upload", files=upload_files(photos_dir), data={"name": "upload", "batch_size": "4"}
    )
    assert created.status_code == 201, created.text
    job = created.json()["job"]
    assert created.json()["queued"] == 6 and created.headers["location"] == f"/api/jobs/{job}"
    stored = sorted(p.name for p in settings.upload_root.rglob("*") if p.is_file())
    assert stored == sorted([*PHOTOS, "broken.jpg"])

    status = wait_for(client, job)
    assert status["total"] == 6 and status["failed"] == 1 and status["pending"] == 0 and status["percent"] == 100.0
    assert status["done"] == 5 and status["faces"] >= 5 + 1 + 5  # the couple and the selfie have several
    assert status["images_per_second"] > 0 and status["eta_seconds"] == 0
    assert [f["path"].endswith("broken.jpg") for f in status["failures"]] == [True]
    assert "corrupt or truncated" in status["failures"][0]["error"]
    listed = client.get("/api/jobs").json()
    assert listed["total"] == 1 and listed["jobs"][0]["failed"] == 1 and listed["jobs"][0]["done"] == 5

    report = _check_report_as_the_cli_prints_it(client, env, job, status)
    faces, commonest = _check_faces_filtered_and_paged(client, job, report)
    couple = _check_annotated_and_cropped(client, job, photos_dir, faces)

    # live progress ends with `done` on a finished job; resume has nothing to do
    with client.stream("GET", f"/api/jobs/{job}/events") as stream:
        text = "".join(stream.iter_text())
    assert "event: progress" in text and "event: done" in text and '"percent": 100.0' in text
    assert client.post(f"/api/jobs/{job}/resume").json() == {"job": job, "requeued": 0, "batches": 0}

    # retry-failed: the broken file goes back to pending, is analysed again, fails again
    retried = client.post(f"/api/jobs/{job}/retry-failed").json()
    assert retried == {"job": job, "reset": 1, "batches": 1}
    again = wait_for(client, job)
    assert again["failed"] == 1 and again["done"] == 5 and again["faces"] == status["faces"]

    # pages render from the same data
    page = client.get(f"/jobs/{job}")
    assert page.status_code == 200 and f"Job {job}" in page.text and "couple.jpg" not in page.text
    assert "broken.jpg" in page.text and "corrupt or truncated" in page.text  # the failed image and its reason
    gallery = client.get(f"/jobs/{job}/faces", params={"emotion": commonest})
    assert gallery.text.count(f'data-emotion="{commonest}"') == min(48, report["dominant"][commonest])
    assert client.get(f"/jobs/{job}/images/{couple['image_id']}").status_code == 200
    assert client.get("/").status_code == 200 and client.get("/jobs/new").status_code == 200
    assert {"/api/jobs/upload", "/api/jobs/{job_id}/faces"} <= set(client.get("/openapi.json").json()["paths"])
    assert client.get("/docs").status_code == 200


def test_job_from_server_paths(live, photos_dir: Path, tmp_path: Path) -> None:
    client, _env, _settings = live
    library = tmp_path / "library" / "party"
    library.mkdir(parents=True)
    for name in PHOTOS[:2]:
        shutil.copy(photos_dir / name, library / name)
    created = client.post("/api/jobs", json={"paths": [str(library)], "backend": "deepface", "name": "party"})
    assert created.status_code == 202, created.text  # recorded; the scan goes on in the background
    job = created.json()["job"]
    status = wait_for(client, job)
    assert status["total"] == 2 and status["done"] == 2 and status["backend"] == "deepface"
    report = client.get(f"/api/jobs/{job}/report", params={"by": "folder"}).json()
    assert list(report["folders"]) == [str(library)] and report["name"] == "party"


def test_a_job_of_face_crops_over_http_reads_each_image_as_one_face(live, shared_data: Path, tmp_path: Path) -> None:
    """`detector: "skip"` (issue 22): a folder of 48x48 FER2013 faces, each one face."""
    client, _env, _settings = live
    library = tmp_path / "library" / "crops"
    library.mkdir(parents=True)
    for face in sorted((shared_data / "fer2013" / "test" / "happy").glob("*.png"))[:3]:
        shutil.copy(face, library / face.name)
    refused = client.post("/api/jobs", json={"paths": [str(library)], "detector": "nope"})
    assert refused.status_code == 422
    created = client.post("/api/jobs", json={"paths": [str(library)], "backend": "cnn", "detector": "skip"})
    assert created.status_code == 202, created.text
    status = wait_for(client, created.json()["job"])
    assert status["done"] == 3 and status["faces"] == 3
