"""Videos through the whole system: producer CLI -> a real redis-server -> real Celery
worker processes -> SQLite and PostgreSQL -> report (the end-to-end video test runs on
both; PostgreSQL skipped locally without TEST_POSTGRES_URL, failing in CI), and a worker
SIGKILLed mid-video losing and doubling nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bench.videoclips import write_clip
from db.reports import job_report
from db.schema import Image
from db.session import make_session_factory
from db.video_schema import FrameFace, Video, VideoSegment
from emotion_batch.labels import EMOTIONS
from producer.local import LocalRedis, LocalWorker
from producer.render import report_json
from tests.conftest import run_producer
from tests.faults_support import kill_pool_children, wait_until
from tests.video_support import (
    NATIVE_FPS,
    clips,  # noqa: F401 (a fixture)
    stored_frames,
)


def _env(worker_env: dict[str, str], redis: LocalRedis, **extra: str) -> dict[str, str]:
    return {**worker_env, "REDIS_URL": redis.url, "WORKER_BACKENDS": json.dumps(["cnn"]), **extra}


def _logs(tmp_path: Path) -> str:
    return "\n".join(p.read_text(errors="replace")[-3000:] for p in tmp_path.glob("*.log"))


def _audit(url: str, job: int) -> dict[str, Video]:
    """Every video of the job, with its segments and frames loaded."""
    with make_session_factory(url)() as session:
        videos = session.scalars(select(Video).where(Video.job_id == job)).all()
        for video in videos:
            _ = list(video.segments)
        return {Path(v.path).name: v for v in videos}


def _mixed_tree(root: Path, clips: dict[str, Path], photos_dir: Path) -> None:
    """Photos and clips of every kind under `root`: good ones, a duplicate, broken ones,
    one over the length limit."""
    (root / "photos").mkdir(parents=True)
    for name in ("img1.jpg", "img2.jpg", "couple.jpg"):
        shutil.copy(photos_dir / name, root / "photos" / name)
    (root / "clips").mkdir()
    for key in ("mp4", "avi", "mkv", "webm", "half_mp4", "half_avi", "header_only", "empty", "liar", "audio"):
        if clips[key] is not None:
            shutil.copy(clips[key], root / "clips" / clips[key].name)
    shutil.copy(clips["mp4"], root / "clips" / "walk2.mp4")  # same content: registered once
    write_clip(root / "clips" / "long.avi", sorted(photos_dir.glob("img2*.jpg"))[:2], 40, size=(160, 90))


def _check_sampled(url: str, videos: dict[str, Video]) -> None:
    """Each good clip sampled at 2 per second, every sample one stored frame."""
    expected_ok = {"walk.mp4": 30, "party.avi": 20, "talk.mkv": 20, "short.webm": 4}
    for name, seconds in expected_ok.items():
        video = videos[name]
        assert video.status == "done" and video.error is None, (name, video.error)
        assert video.samples == seconds * 2 and video.duration_s == seconds
        assert len(video.segments) == -(-seconds // 8) and all(s.status == "done" for s in video.segments)
        frames = stored_frames(url, video.id)
        assert [f.frame_no for f in frames] == list(range(seconds * 2))  # one outcome per sample
        for frame in frames:
            assert frame.timestamp_s == pytest.approx(frame.frame_no / 2, abs=1 / NATIVE_FPS)
            assert frame.segment_no == int(frame.timestamp_s // 8)
            assert frame.face_count == len(frame.faces) and frame.status in ("done", "no_face")
            assert frame.detector.startswith("yunet-") and frame.model_version.startswith("cnn")
            for face in frame.faces:
                assert sum(getattr(face, e) for e in EMOTIONS) == pytest.approx(100.0, abs=1e-6)
                assert face.x + face.w <= 640 and face.y + face.h <= 360
        assert sum(f.status == "done" for f in frames) >= 0.8 * len(frames), name


@pytest.mark.integration
@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_videos_and_photos_through_worker_and_report(
    clips: dict[str, Path], photos_dir: Path, tmp_path: Path, private_redis: LocalRedis, worker_env: dict[str, str]
) -> None:
    root = tmp_path / "collection"
    _mixed_tree(root, clips, photos_dir)
    env = _env(worker_env, private_redis, VIDEO_FPS="2", VIDEO_SEGMENT_SECONDS="8", VIDEO_MAX_SECONDS="35")
    with LocalWorker(env, concurrency=1, name=f"v-{tmp_path.name}", log_file=tmp_path / "worker.log"):
        result = run_producer(env, "submit", str(root), "--wait", "--timeout", "500")
    assert result.returncode == 0, result.stderr + _logs(tmp_path)
    job = int(result.stdout.strip().splitlines()[-1])
    url = env["DATABASE_URL"]
    videos = _audit(url, job)
    _check_sampled(url, videos)

    assert "walk2.mp4" not in videos  # its content is walk.mp4's
    failed = {name: v.error for name, v in videos.items() if v.status == "failed"}
    assert "cannot open" in failed.pop("half.mp4")
    assert "not one frame can be decoded" in failed.pop("header-only.mkv")
    assert "empty file" in failed.pop("empty.mp4")
    assert "video too long: 40 s is over the 35 s limit" in failed.pop("long.avi")
    if clips["audio"] is not None:
        assert "audio only" in failed.pop("voice.mp4")
    assert failed == {}
    liar = videos["claims-hours.avi"]
    assert liar.status == "done" and liar.duration_s == 20 and "claims 10800.0 s" in liar.note
    assert len(stored_frames(url, liar.id)) == 40
    half = videos["half.avi"]
    assert half.status == "done" and "truncated" in half.note and len(stored_frames(url, half.id)) == half.samples

    with make_session_factory(url)() as session:  # photos stay photos
        assert session.scalar(select(func.count(Image.id)).where(Image.job_id == job)) == 3
        doubles = session.execute(
            select(FrameFace.frame_id, FrameFace.face_index)
            .group_by(FrameFace.frame_id, FrameFace.face_index)
            .having(func.count() > 1)
        ).all()
        assert doubles == []
    _check_reports(env, job, videos, tmp_path)


def _check_reports(env: dict[str, str], job: int, videos: dict[str, Video], tmp_path: Path) -> None:
    """The per-video report adds up to what the database holds; charts and page are made."""
    url = env["DATABASE_URL"]
    frames = {name: stored_frames(url, v.id) for name, v in videos.items()}
    with make_session_factory(url)() as session:
        report = job_report(session, job, by="video")
        by_folder = job_report(session, job, by="folder")
    assert report["images"] == 3 and report["no_face"] + report["failed"] <= 3  # photos only
    totals = report["video"]
    assert totals["videos"] == len(videos) and totals["failed"] == sum(v.status == "failed" for v in videos.values())
    assert totals["frames"] == sum(len(f) for f in frames.values())
    assert totals["faces"] == sum(len(fr.faces) for f in frames.values() for fr in f)
    clips_folder = by_folder["folders"][str(Path(next(iter(videos.values())).path).parent)]
    assert clips_folder["images"] == 0 and clips_folder["video"] == totals  # a folder of videos only
    for path, data in report["videos"].items():
        rows = frames[Path(path).name]
        assert data["frames"] == len(rows) and data["faces"] == sum(len(r.faces) for r in rows)
        assert sum(data["dominant"].values()) == data["faces"]
        assert data["frames_no_face"] == sum(r.status == "no_face" for r in rows)
        if data["faces"]:
            assert sum(data["share"].values()) == pytest.approx(100.0)
            assert sum(data["mean"].values()) == pytest.approx(100.0, abs=1e-3)
            assert len(data["timeline"]) == sum(r.face_count > 0 for r in rows)
            for moments in data["moments"].values():
                assert len(moments) == min(3, len(data["timeline"]))
                assert moments == sorted(moments, key=lambda m: -m["percent"])
                assert all(0 <= m["t"] <= data["duration_s"] for m in moments)
    walk = report["videos"][videos["walk.mp4"].path]
    happiest = walk["moments"]["happy"][0]
    best = max((r for r in frames["walk.mp4"] if r.faces), key=lambda r: sum(f.happy for f in r.faces) / len(r.faces))
    assert happiest["t"] == pytest.approx(best.timestamp_s)

    cli = run_producer(env, "report", str(job), "--format", "json")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["video"] == totals
    cli = run_producer(env, "report", str(job), "--by", "video", "--format", "json")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["videos"] == json.loads(report_json(report))["videos"]  # percentages rounded
    rows = run_producer(env, "report", str(job), "--by", "video", "--format", "csv").stdout.strip().splitlines()
    assert len(rows) == 1 + len(videos) and rows[0].startswith("job,video,status,reason")
    table = run_producer(env, "report", str(job), "--by", "video")
    assert table.returncode == 0 and "walk.mp4 strongest moments: happy" in table.stdout, table.stdout
    assert f"videos: {len(videos)} ({totals['failed']} failed, 0 pending)" in table.stdout
    page = tmp_path / "report.html"
    assert run_producer(env, "report", str(job), "--format", "html", "--out", str(page)).returncode == 0
    html = page.read_text()
    assert "<h2>Videos</h2>" in html and "video-walk.mp4-over-time.png" in html and "claims 10800.0 s" in html
    charts = run_producer(env, "chart", str(job), "--out", str(tmp_path / "charts"))
    assert charts.returncode == 0, charts.stderr
    for name in ("walk.mp4", "party.avi", "talk.mkv", "short.webm", "claims-hours.avi"):
        assert (tmp_path / "charts" / f"video-{name}-over-time.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.integration
@pytest.mark.faults
def test_worker_sigkilled_mid_video_loses_and_doubles_nothing(
    photos_dir: Path, tmp_path: Path, private_redis: LocalRedis, worker_env: dict[str, str]
) -> None:
    root = tmp_path / "film"
    root.mkdir()
    write_clip(root / "film.mp4", sorted(photos_dir.glob("img*.jpg"))[:12], 60)
    env = _env(worker_env, private_redis, VIDEO_SEGMENT_SECONDS="6")
    result = run_producer(env, "submit", str(root), "--fps", "5")
    assert result.returncode == 0, result.stderr
    assert "videos: 1 registered, 10 segments queued" in result.stderr
    job = int(result.stdout.strip().splitlines()[-1])
    url = env["DATABASE_URL"]
    sessions = make_session_factory(url)

    def segments(status: str, attempted: bool = False) -> int:
        with sessions() as session:
            query = select(func.count(VideoSegment.id)).where(VideoSegment.status == status)
            if attempted:
                query = query.where(VideoSegment.attempts > 0)
            return int(session.scalar(query))

    first = LocalWorker(env, concurrency=1, name=f"k-{tmp_path.name}", log_file=tmp_path / "w1.log").start()
    try:
        # Killed while a segment is in flight (claimed, not stored), after others finished.
        assert wait_until(lambda: segments("done") >= 2 and segments("pending", attempted=True) >= 1, 300, 0.01), _logs(
            tmp_path
        )
        assert kill_pool_children(first.process.pid), "no pool process to kill"
        with LocalWorker(env, concurrency=1, name=f"k2-{tmp_path.name}", log_file=tmp_path / "w2.log"):
            assert wait_until(lambda: segments("pending") == 0, 400, 0.2), _logs(tmp_path)
    finally:
        first.stop()
    video = _audit(url, job)["film.mp4"]
    assert video.status == "done" and len(video.segments) == 10
    assert all(s.status == "done" for s in video.segments)
    assert any(s.attempts >= 2 for s in video.segments)  # the killed one was delivered again
    frames = stored_frames(url, video.id)
    assert [f.frame_no for f in frames] == list(range(300))  # nothing lost, nothing doubled
    assert all(f.status in ("done", "no_face") for f in frames)
