"""Live sources with real parts: an HTTP MJPEG stream served by the test itself on
loopback from the face photos, a video file written with cv2.VideoWriter opened as a live
source, a real redis-server, one real Celery worker and a real SQLite file, driven
through the `producer live` CLI in a subprocess (SIGINT sent to it as Ctrl-C would); the
killed-worker test also on PostgreSQL (skipped locally without TEST_POSTGRES_URL, failing
in CI)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta, timezone
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bench.mjpeg import MjpegServer, jpeg_frames
from bench.videoclips import write_clip
from db.schema import Job
from db.session import make_session_factory
from db.video_schema import Frame, Video, VideoSegment
from emotion_batch.config import Settings
from emotion_batch.defaults import REPO_ROOT
from emotion_batch.labels import EMOTIONS
from emotion_batch.live import LiveOptions, open_source, sample_live
from producer.local import LocalRedis, LocalWorker, free_port
from producer.web.app import create_app
from tests.conftest import need, run_producer
from tests.faults_support import kill_pool_children, wait_until


@pytest.fixture(scope="module")
def photos(photos_dir: Path) -> list[Path]:
    return sorted(photos_dir.glob("img*.jpg"))[:6]


@pytest.fixture
def stream(photos: list[Path]):
    server = MjpegServer(jpeg_frames(photos), rate=10).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, deepface_home: Path, yunet_model: Path):
    """One redis-server and one worker for the module; each test's jobs are its own."""
    need(shutil.which("redis-server") is not None, "redis-server")
    root = tmp_path_factory.mktemp("live")
    redis = LocalRedis(root / "redis").start()
    env = {
        "DATABASE_URL": f"sqlite:///{root / 'live.db'}",
        "REDIS_URL": redis.url,
        "DEEPFACE_HOME": str(deepface_home),
        "YUNET_MODEL": str(yunet_model),
        "WORKER_BACKENDS": json.dumps(["cnn"]),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "LIVE_ROOT": str(root / "spool"),
        "VIDEO_SEGMENT_SECONDS": "2",
    }
    assert run_producer(env, "migrate").returncode == 0
    worker = LocalWorker(env, concurrency=1, name=f"live-{root.name}", log_file=root / "worker.log").start()
    yield env
    worker.stop()
    redis.stop()


def _job(result: subprocess.CompletedProcess) -> int:
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip().splitlines()[-1])


def _video(env: dict[str, str], job: int) -> tuple[Video, list[Frame]]:
    with make_session_factory(env["DATABASE_URL"])() as session:
        video = session.scalars(select(Video).where(Video.job_id == job)).one()
        frames = session.scalars(select(Frame).where(Frame.video_id == video.id).order_by(Frame.frame_no)).all()
        for frame in frames:
            _ = list(frame.faces)
        _ = list(video.segments)
        return video, list(frames)


def _check_frames(video: Video, frames: list[Frame], fps: float) -> None:
    """One outcome per sample, ordered times at about the rate, wall clock = start + offset,
    faces with the seven emotions."""
    assert video.status == "done" and video.samples == len(frames) > 0
    assert all(s.status == "done" for s in video.segments)
    assert [f.frame_no for f in frames] == list(range(len(frames)))
    times = np.array([f.timestamp_s for f in frames])
    # samples are due every 1/fps s; each is the first frame read at or after its due time
    assert (np.diff(times) > 0).all(), times
    assert all(abs(t - k / fps) < 0.35 for k, t in enumerate(times) if t < 2.0), times
    start = video.file_mtime.replace(tzinfo=timezone.utc)
    for frame in frames:
        captured = frame.captured_at.replace(tzinfo=timezone.utc)
        assert abs(captured - (start + timedelta(seconds=frame.timestamp_s))) < timedelta(milliseconds=1)
        assert frame.status in ("done", "no_face") and frame.face_count == len(frame.faces)
        for face in frame.faces:
            assert sum(getattr(face, e) for e in EMOTIONS) == pytest.approx(100.0, abs=1e-6)
    assert sum(f.status == "done" for f in frames) >= 0.7 * len(frames)


@pytest.mark.integration
def test_mjpeg_stream_until_duration(system: dict[str, str], stream: MjpegServer) -> None:
    result = run_producer(system, "live", stream.url, "--fps", "2", "--duration", "6", "--wait", "--timeout", "300")
    job = _job(result)
    video, frames = _video(system, job)
    assert video.source == stream.url and video.sample_fps == 2
    assert 9 <= len(frames) <= 13 and frames[-1].timestamp_s < 6.0
    _check_frames(video, frames, 2)
    assert len(video.segments) >= 3  # handed on every VIDEO_SEGMENT_SECONDS while sampling
    assert "--duration 6 s reached" in video.note and "stopped at" in video.note
    assert not Path(video.path).exists()  # spool removed once stored
    report = run_producer(system, "report", str(job), "--by", "video", "--format", "json")
    assert report.returncode == 0 and stream.url in report.stdout
    out = Path(system["LIVE_ROOT"]).parent / f"out-{job}"
    chart = f"video-{Path(video.path).name}-over-time.png"
    assert run_producer(system, "chart", str(job), "--out", str(out)).returncode == 0
    assert (out / chart).read_bytes()[:4] == b"\x89PNG"
    page = out / "report.html"
    assert run_producer(system, "report", str(job), "--format", "html", "--out", str(page)).returncode == 0
    assert "<h2>Videos</h2>" in page.read_text() and chart in page.read_text()


@pytest.mark.integration
def test_video_file_as_a_live_source_plays_at_its_pace_and_ends(
    system: dict[str, str], photos: list[Path], tmp_path: Path
) -> None:
    clip = write_clip(tmp_path / "feed.avi", photos[:2], 5)
    started = time.monotonic()
    result = run_producer(system, "live", str(clip), "--fps", "2", "--keep-frames", "--wait", "--timeout", "300")
    assert time.monotonic() - started >= 4.5  # played in real time, not decoded at once
    video, frames = _video(system, _job(result))
    assert 8 <= len(frames) <= 11 and "the source ended" in video.note
    _check_frames(video, frames, 2)
    kept = sorted(Path(video.path).glob("seg*/*.jpg"))
    assert len(kept) == len(frames)  # --keep-frames


def _live_cli(system: dict[str, str], args: list[str], **env: str) -> subprocess.Popen:
    """`producer live ARGS` in a process of its own, its output captured."""
    return subprocess.Popen(
        [sys.executable, "-m", "producer.cli", "live", *args],
        env={**os.environ, **system, **env},
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.integration
def test_sigint_stops_and_the_last_partial_segment_is_analysed(system: dict[str, str], stream: MjpegServer) -> None:
    process = _live_cli(system, [stream.url, "--fps", "2", "--wait", "--timeout", "300"], VIDEO_SEGMENT_SECONDS="600")
    spool = Path(system["LIVE_ROOT"])
    before = set(spool.glob("job*/seg*/*.jpg")) if spool.exists() else set()
    assert wait_until(lambda: len(set(spool.glob("job*/seg*/*.jpg")) - before) >= 4, 60)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    video, frames = _video(system, int(stdout.strip().splitlines()[-1]))
    assert "interrupted" in video.note and len(video.segments) == 1  # only the partial one
    assert len(frames) >= 4
    _check_frames(video, frames, 2)


@pytest.mark.integration
def test_a_source_that_drops_and_comes_back(system: dict[str, str], stream: MjpegServer) -> None:
    process = _live_cli(system, [stream.url, "--fps", "2", "--duration", "12", "--wait"], LIVE_REOPEN_SECONDS="30")
    time.sleep(4)
    stream.stop()
    time.sleep(3)
    stream.start()  # same port: the camera is back
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert "reopening" in stderr and "reopened" in stderr
    video, frames = _video(system, int(stdout.strip().splitlines()[-1]))
    gaps = np.diff([f.timestamp_s for f in frames])
    assert gaps.max() > 2.0  # the time away
    assert frames[-1].timestamp_s > 8.0  # frames again after it came back
    assert "--duration 12 s reached" in video.note
    _check_frames(video, frames, 2)


def test_a_source_that_cannot_be_opened_is_one_error_and_no_job(tmp_path: Path) -> None:
    need(shutil.which("redis-server") is not None, "redis-server")
    with LocalRedis(tmp_path / "redis") as redis:
        env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "REDIS_URL": redis.url}
        port = free_port()
        for source, said in (
            (f"http://127.0.0.1:{port}/stream.mjpg", f"http://127.0.0.1:{port}/stream.mjpg"),
            ("/dev/video99", "/dev/video99"),
            (f"rtsp://admin:s3cret@127.0.0.1:{port}/stream1", f"rtsp://admin:***@127.0.0.1:{port}/stream1"),
        ):
            result = run_producer(env, "live", source, "--duration", "5")
            assert result.returncode != 0
            lines = [line for line in result.stderr.splitlines() if line.startswith("Error")]
            reason = "cannot be opened (no such camera, an unreachable URL or an unknown format)"
            assert lines == [f"Error: {said}: {reason}"]
            assert "s3cret" not in result.stderr
            assert "Traceback" not in result.stderr
        with make_session_factory(env["DATABASE_URL"])() as session:
            assert session.scalars(select(Job)).all() == []


class _Recorder:
    """A Sink (emotion_batch.live's Protocol) that keeps what it is given."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, int, float]] = []
        self.segments: list[tuple[int, int]] = []

    def frame(self, segment_no: int, k: int, captured: float, bgr: np.ndarray) -> None:
        self.frames.append((segment_no, k, captured))

    def segment(self, segment_no: int, start_s: float, end_s: float, frames: int) -> None:
        self.segments.append((segment_no, frames))


def test_a_source_that_stays_away_ends_after_the_reopen_time(stream: MjpegServer) -> None:
    sink = _Recorder()
    cap = open_source(stream.url)
    options = LiveOptions(fps=4, segment_s=60, reopen_s=2)
    stopper = {"at": time.monotonic() + 1.5}

    def stop() -> bool:
        if time.monotonic() > stopper["at"]:
            stream.stop()  # the camera goes away for good
        return False

    started = time.monotonic()
    result = sample_live(stream.url, cap, options, sink, stop)
    assert "dropped at" in result.reason and "could not be reopened within 2 s" in result.reason
    assert time.monotonic() - started < 15
    assert result.frames == len(sink.frames) >= 4
    assert sink.segments == [(0, result.frames)]  # the partial segment still handed on


# --- over HTTP: POST /api/jobs/live, DELETE /api/jobs/{id}/live, LIVE_SOURCES ----------


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
@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_worker_killed_mid_live_segment_loses_and_doubles_nothing(
    tmp_path: Path, worker_env: dict[str, str], stream: MjpegServer
) -> None:
    need(shutil.which("redis-server") is not None, "redis-server")
    with LocalRedis(tmp_path / "redis") as redis:
        env = {
            **worker_env,
            "REDIS_URL": redis.url,
            "WORKER_BACKENDS": json.dumps(["cnn"]),
            "LIVE_ROOT": str(tmp_path / "spool"),
            "VIDEO_SEGMENT_SECONDS": "4",
        }
        # sampled with no worker running: its segments (of 30 frames, long enough to be caught
        # in flight) wait on Redis, their frames in the spool
        job = _job(run_producer(env, "live", stream.url, "--fps", "8", "--duration", "12"))
        sessions = make_session_factory(env["DATABASE_URL"])

        def segments(status: str, attempted: bool = False) -> int:
            with sessions() as session:
                query = select(VideoSegment.id).where(VideoSegment.status == status)
                if attempted:
                    query = query.where(VideoSegment.attempts > 0)
                return len(session.scalars(query).all())

        assert segments("pending") >= 3
        first = LocalWorker(env, concurrency=1, name=f"lk-{tmp_path.name}", log_file=tmp_path / "w1.log").start()
        try:
            assert wait_until(lambda: segments("done") >= 1 and segments("pending", attempted=True) >= 1, 300, 0.01)
            assert kill_pool_children(first.process.pid), "no pool process to kill"
            with LocalWorker(env, concurrency=1, name=f"lk2-{tmp_path.name}", log_file=tmp_path / "w2.log"):
                assert wait_until(lambda: segments("pending") == 0, 400, 0.2)
        finally:
            first.stop()
    video, frames = _video(env, job)
    assert any(s.attempts >= 2 for s in video.segments)  # the killed one was delivered again
    assert [f.frame_no for f in frames] == list(range(video.samples))  # nothing lost, nothing doubled
    _check_frames(video, frames, 8)
    assert not Path(video.path).exists()


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
