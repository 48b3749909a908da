"""Live sources started and stopped through the web service: the app refuses sources
LIVE_SOURCES does not allow and starts and stops an allowed one (an HTTP MJPEG stream
served by the test itself on loopback, a real redis-server, a real SQLite file);
`producer serve` over real HTTP with its token, stopped by the job page's button in
headless Chromium; and the rule that a LIVE_SOURCES prefix ends its host."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bench.mjpeg import MjpegServer
from db.schema import Job
from db.session import make_session_factory
from db.video_schema import Video
from emotion_batch.config import Settings
from emotion_batch.defaults import REPO_ROOT
from producer.local import free_port
from producer.web.app import create_app
from tests.conftest import need
from tests.faults_support import wait_until
from tests.live_support import (
    photos,  # noqa: F401 (a fixture)
    stream,  # noqa: F401 (a fixture)
)


def _web(tmp_path: Path, redis_url: str, **extra: object) -> Settings:
    return Settings(
        _env_file=None,
        database_url=f"sqlite:///{tmp_path / 'web.db'}",
        redis_url=redis_url,
        queue=f"q-{uuid.uuid4().hex[:8]}",
        upload_root=tmp_path / "uploads",
        live_root=tmp_path / "spool",
        video_segment_seconds=600,
        **extra,
    )


def _jobs(settings: Settings) -> list[Job]:
    with make_session_factory(settings.database_url)() as session:
        return list(session.scalars(select(Job)).all())


def test_web_refuses_sources_not_allowed(redis_server, tmp_path: Path, stream: MjpegServer) -> None:
    settings = _web(tmp_path, redis_server.url)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        refused = client.post("/api/jobs/live", json={"source": stream.url, "duration": 5})
        assert refused.status_code == 403, refused.text
        assert "not an allowed live source" in refused.json()["error"] and "LIVE_SOURCES" in refused.json()["error"]
        for sneaky in ("file:///etc/passwd", "0 ; http://example.com", f"{stream.url}/../x"):
            assert client.post("/api/jobs/live", json={"source": sneaky}).status_code == 403
    with TestClient(create_app(settings), base_url="http://rebind.example") as foreign:
        refused = foreign.post("/api/jobs/live", json={"source": "0"})
        assert refused.status_code == 403 and "host name not allowed" in refused.json()["error"]
    assert _jobs(settings) == []


def test_web_starts_and_stops_an_allowed_live_source(redis_server, tmp_path: Path, stream: MjpegServer) -> None:
    dead = f"http://127.0.0.1:{free_port()}/"  # listed, but nothing listens there
    settings = _web(tmp_path, redis_server.url, live_sources=[f"http://127.0.0.1:{stream.port}/*", f"{dead}*"])
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        unopenable = client.post("/api/jobs/live", json={"source": f"{dead}cam.mjpg"})
        assert unopenable.status_code == 400 and "cannot be opened" in unopenable.json()["error"]
        assert _jobs(settings) == []
        started = client.post("/api/jobs/live", json={"source": stream.url, "fps": 2, "name": "door camera"})
        assert started.status_code == 202, started.text
        job = started.json()["job"]
        spool = tmp_path / "spool"
        assert wait_until(lambda: len(list(spool.glob(f"job{job}-*/seg*/*.jpg"))) >= 3, 30)
        assert client.get(f"/api/jobs/{job}").json()["live"] is True
        page = client.get(f"/jobs/{job}").text
        assert 'id="stop-live"' in page and f'action="/api/jobs/{job}/live"' in page and 'data-method="DELETE"' in page
        stopped = client.delete(f"/api/jobs/{job}/live")
        assert stopped.status_code == 200 and stopped.json()["stopping"]
        with make_session_factory(settings.database_url)() as session:
            assert wait_until(lambda: session.scalar(select(Video.note).where(Video.job_id == job)) is not None, 30)
            video = session.scalars(select(Video).where(Video.job_id == job)).one()
            assert "interrupted" in video.note and video.samples >= 3 and video.status == "pending"
            assert len(video.segments) == 1  # the partial segment handed to the workers
        # stopped already (once its thread has handed on the last segment and returned)
        assert wait_until(lambda: client.delete(f"/api/jobs/{job}/live").status_code == 409, 30)
        assert client.get(f"/api/jobs/{job}").json()["live"] is False
        assert 'id="stop-live"' not in client.get(f"/jobs/{job}").text
        assert client.delete("/api/jobs/999/live").status_code == 404


@pytest.mark.integration
def test_serve_starts_a_live_job_and_the_page_stops_it(
    tmp_path: Path, redis_server, worker_env: dict[str, str], stream: MjpegServer
) -> None:
    """Over real HTTP against `producer serve` (token required), then the job page's Stop
    button in headless Chromium."""
    from tests.test_web_browser import CHROMIUM, start_serve

    need(CHROMIUM.exists(), "Debian's chromium (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    port, token = free_port(), "live-test-token"
    env = {
        **os.environ,
        **worker_env,
        "REDIS_URL": redis_server.url,
        "WEB_TOKEN": token,
        "LIVE_ROOT": str(tmp_path / "spool"),
        "LIVE_SOURCES": json.dumps([f"http://127.0.0.1:{stream.port}/*"]),
        "VIDEO_SEGMENT_SECONDS": "600",
    }
    process, url = start_serve(["--port", str(port)], env, REPO_ROOT, tmp_path / "serve.log", port)
    try:
        body = {"source": stream.url, "fps": 2, "name": "lobby"}
        assert httpx.post(f"{url}/api/jobs/live", json=body).status_code == 401  # no token
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        refused = api.post("/api/jobs/live", json={"source": "http://169.254.169.254/latest/meta-data/"})
        assert refused.status_code == 403 and "LIVE_SOURCES" in refused.json()["error"]
        started = api.post("/api/jobs/live", json=body)
        assert started.status_code == 202, started.text
        job = started.json()["job"]
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(f"{url}/jobs/{job}")
            page.fill("input[name=token]", token)
            page.click("button")
            page.wait_for_url(f"{url}/jobs/{job}")
            assert "sampling a live source" in page.inner_text("#live")
            page.click("#stop-live button")
            assert wait_until(lambda: api.get(f"/api/jobs/{job}").json()["live"] is False, 30)
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
    with make_session_factory(worker_env["DATABASE_URL"])() as session:
        video = session.scalars(select(Video).where(Video.job_id == job)).one()
        assert "interrupted" in video.note and video.samples >= 1 and video.source == stream.url


def test_a_live_sources_prefix_must_end_its_host() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="must end its host with '/'"):
        Settings(_env_file=None, live_sources=["rtsp://cam.local*"])
    assert Settings(_env_file=None, live_sources=["rtsp://cam.local/*"]).live_sources == ["rtsp://cam.local/*"]
