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
from datetime import timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from bench.mjpeg import MjpegServer
from bench.videoclips import write_clip
from db.schema import Job
from db.session import make_session_factory
from db.video_schema import Frame, Video, VideoSegment
from emotion_batch.defaults import REPO_ROOT
from emotion_batch.labels import EMOTIONS
from emotion_batch.live import LiveOptions, open_source, sample_live
from producer.local import LocalRedis, LocalWorker, free_port
from tests.conftest import need, process_env, run_producer
from tests.faults_support import kill_pool_children, wait_until
from tests.live_support import (
    photos,  # noqa: F401 (a fixture)
    stream,  # noqa: F401 (a fixture)
)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, deepface_home: Path, yunet_model: Path):
    """One redis-server and one worker for the module; each test's jobs are its own."""
    need(shutil.which("redis-server") is not None, "redis-server")
    root = tmp_path_factory.mktemp("live")
    redis = LocalRedis(root / "redis").start()
    env = process_env(
        f"sqlite:///{root / 'live.db'}",
        deepface_home,
        yunet_model,
        ["cnn"],
        REDIS_URL=redis.url,
        LIVE_ROOT=str(root / "spool"),
        VIDEO_SEGMENT_SECONDS="2",
    )
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
