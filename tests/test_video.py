"""Videos with real parts: clips written with cv2.VideoWriter from the face photos,
broken ones, a real redis-server, real Celery worker processes, SQLite and PostgreSQL
(the end-to-end video test runs on both; PostgreSQL skipped locally without
TEST_POSTGRES_URL, failing in CI)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bench.videoclips import claim_longer, cut, frame_index_of, write_clip
from db.reports import job_report
from db.schema import Image
from db.session import make_session_factory
from db.video_schema import Frame, FrameFace, Video, VideoSegment
from db.videos import segment_bounds
from emotion_batch.errors import AudioOnlyError, CorruptVideoError, EmptyFileError, VideoTooLongError
from emotion_batch.labels import EMOTIONS
from emotion_batch.video import expected_samples, is_video, probe, read_samples, sniff_video
from producer.local import LocalRedis, LocalWorker
from producer.render import report_json
from tests.conftest import run_producer
from tests.faults_support import kill_pool_children, wait_until

NATIVE_FPS = 25.0


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory, photos_dir: Path) -> dict[str, Path]:
    """Good and broken clips, made once for the module."""
    out = tmp_path_factory.mktemp("clips")
    photos = sorted(photos_dir.glob("img*.jpg"))
    made = {
        "mp4": write_clip(out / "walk.mp4", photos[:8], 30),
        "avi": write_clip(out / "party.avi", photos[8:14], 20),
        "mkv": write_clip(out / "talk.mkv", photos[14:18], 20),
        "webm": write_clip(out / "short.webm", photos[18:20], 4),
    }
    made["half_mp4"] = cut(made["mp4"], out / "half.mp4", 0.5)
    made["half_avi"] = cut(made["avi"], out / "half.avi", 0.5)
    made["header_only"] = cut(made["mkv"], out / "header-only.mkv", 1024)
    made["empty"] = out / "empty.mp4"
    made["empty"].write_bytes(b"")
    made["liar"] = claim_longer(made["avi"], out / "claims-hours.avi", int(NATIVE_FPS * 3 * 3600))
    made["audio"] = _audio_only(out / "voice.mp4")
    return made


def _audio_only(path: Path) -> Path | None:
    """An MP4 holding one AAC sound track and no picture (PyAV writes it)."""
    try:
        import av
    except ImportError:
        return None
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


# --- in-process: probing, sampling, recognition ---------------------------------------


def test_recognised_by_content_not_by_name(clips: dict[str, Path], tmp_path: Path) -> None:
    renamed = tmp_path / "holiday.jpg.bak"
    shutil.copy(clips["mkv"], renamed)
    assert is_video(renamed) and sniff_video(clips["mp4"].read_bytes()[:16])
    assert sniff_video(clips["avi"].read_bytes()[:16]) and sniff_video(clips["webm"].read_bytes()[:16])
    photo = next(Path(__file__).parent.parent.glob("docs/*.png"))
    assert not is_video(photo)


@pytest.mark.parametrize("kind", ["mp4", "avi", "mkv", "webm"])
def test_probe_and_sample_every_format_at_the_rate(clips: dict[str, Path], kind: str) -> None:
    info = probe(clips[kind])
    seconds = {"mp4": 30, "avi": 20, "mkv": 20, "webm": 4}[kind]
    assert (info.width, info.height, info.native_fps, info.frames) == (640, 360, NATIVE_FPS, seconds * 25)
    assert info.note is None
    for fps in (1.0, 3.0):
        wanted = expected_samples(info.frames, info.native_fps, fps, 0.0, info.duration_s)
        assert len(wanted) == int(seconds * fps)
        got = list(read_samples(clips[kind], wanted, fps, info.native_fps))
        assert [s.k for s in got] == wanted and all(s.error is None for s in got)
        for sample in got:
            assert sample.timestamp_s == pytest.approx(sample.k / fps, abs=1 / NATIVE_FPS)
            assert frame_index_of(sample.rgb) == round(sample.timestamp_s * NATIVE_FPS)


def test_seeking_and_grabbing_give_the_same_frames(clips: dict[str, Path]) -> None:
    info = probe(clips["mp4"])
    wanted = expected_samples(info.frames, info.native_fps, 0.5, 7.0, 29.0)
    grabbed = [frame_index_of(s.rgb) for s in read_samples(clips["mp4"], wanted, 0.5, 25.0, seek_gap=10**6)]
    sought = [frame_index_of(s.rgb) for s in read_samples(clips["mp4"], wanted, 0.5, 25.0, seek_gap=1)]
    assert grabbed == sought == [round(k / 0.5 * 25) for k in wanted]


def test_bad_videos_get_clear_reasons(clips: dict[str, Path]) -> None:
    with pytest.raises(CorruptVideoError, match="cannot open"):
        probe(clips["half_mp4"])
    with pytest.raises(CorruptVideoError, match="not one frame"):
        probe(clips["header_only"])
    with pytest.raises(EmptyFileError):
        probe(clips["empty"])
    with pytest.raises(VideoTooLongError, match="30 s is over the 25 s limit"):
        probe(clips["mp4"], max_seconds=25)
    liar = probe(clips["liar"])
    assert liar.frames == 500 and liar.claimed_s == 3 * 3600
    assert "claims 10800.0 s but the stream ends at 20.0 s" in liar.note
    half = probe(clips["half_avi"])
    assert 100 < half.frames < 500 and "truncated" in half.note
    if clips["audio"] is not None:
        with pytest.raises(AudioOnlyError):
            probe(clips["audio"])


def test_segments_cover_the_video_without_overlap() -> None:
    assert segment_bounds(125.0, 60.0) == [(0.0, 60.0), (60.0, 120.0), (120.0, 125.0)]
    samples = [k for start, end in segment_bounds(125.0, 60.0) for k in expected_samples(3125, 25.0, 1.0, start, end)]
    assert samples == list(range(125))


def test_failed_segment_back_to_pending_without_its_frames(tmp_path: Path, clips: dict[str, Path]) -> None:
    from db.jobs import create_job
    from db.migrate import upgrade
    from db.videos import ProbedVideo, claim_segment, register_videos, reset_failed_segments
    from producer.scan.hash import scan_file

    url = f"sqlite:///{tmp_path / 'v.db'}"
    upgrade(url)
    with make_session_factory(url)() as session:
        job = create_job(session, "v", "cnn", 8, [str(clips["webm"])], False)
        register_videos(session, job.id, [ProbedVideo(scan_file(clips["webm"]), probe(clips["webm"]))], 2.0, 60.0)
        video = session.scalars(select(Video)).one()
        for _ in range(4):  # three deliveries, then the fourth gives up on it
            work = claim_segment(session, video.id, 0, max_attempts=3)
        assert work is None
        session.expire_all()
        assert (video.status, video.segments[0].status) == ("failed", "failed")
        assert len(_frames(url, video.id)) == 8 and all(f.status == "failed" for f in _frames(url, video.id))
        assert reset_failed_segments(session, job.id) == 1
        session.expire_all()
        assert (video.status, video.segments[0].status, video.segments[0].attempts) == ("pending", "pending", 0)
        assert _frames(url, video.id) == []


# --- the whole system: producer CLI -> redis -> worker -> SQLite -> report -----------


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


def _frames(url: str, video_id: int) -> list[Frame]:
    with make_session_factory(url)() as session:
        frames = session.scalars(select(Frame).where(Frame.video_id == video_id).order_by(Frame.frame_no)).all()
        for frame in frames:
            _ = list(frame.faces)
        return list(frames)


@pytest.mark.integration
@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_videos_and_photos_through_worker_and_report(
    clips: dict[str, Path], photos_dir: Path, tmp_path: Path, private_redis: LocalRedis, worker_env: dict[str, str]
) -> None:
    root = tmp_path / "collection"
    (root / "photos").mkdir(parents=True)
    for name in ("img1.jpg", "img2.jpg", "couple.jpg"):
        shutil.copy(photos_dir / name, root / "photos" / name)
    (root / "clips").mkdir()
    for key in ("mp4", "avi", "mkv", "webm", "half_mp4", "half_avi", "header_only", "empty", "liar", "audio"):
        if clips[key] is not None:
            shutil.copy(clips[key], root / "clips" / clips[key].name)
    shutil.copy(clips["mp4"], root / "clips" / "walk2.mp4")  # same content: registered once
    write_clip(root / "clips" / "long.avi", sorted(photos_dir.glob("img2*.jpg"))[:2], 40, size=(160, 90))
    env = _env(worker_env, private_redis, VIDEO_FPS="2", VIDEO_SEGMENT_SECONDS="8", VIDEO_MAX_SECONDS="35")
    with LocalWorker(env, concurrency=1, name=f"v-{tmp_path.name}", log_file=tmp_path / "worker.log"):
        result = run_producer(env, "submit", str(root), "--wait", "--timeout", "500")
    assert result.returncode == 0, result.stderr + _logs(tmp_path)
    job = int(result.stdout.strip().splitlines()[-1])
    url = env["DATABASE_URL"]
    videos = _audit(url, job)

    expected_ok = {"walk.mp4": 30, "party.avi": 20, "talk.mkv": 20, "short.webm": 4}
    for name, seconds in expected_ok.items():
        video = videos[name]
        assert video.status == "done" and video.error is None, (name, video.error)
        assert video.samples == seconds * 2 and video.duration_s == seconds
        assert len(video.segments) == -(-seconds // 8) and all(s.status == "done" for s in video.segments)
        frames = _frames(url, video.id)
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
    assert len(_frames(url, liar.id)) == 40
    half = videos["half.avi"]
    assert half.status == "done" and "truncated" in half.note and len(_frames(url, half.id)) == half.samples

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
    frames = {name: _frames(url, v.id) for name, v in videos.items()}
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
    frames = _frames(url, video.id)
    assert [f.frame_no for f in frames] == list(range(300))  # nothing lost, nothing doubled
    assert all(f.status in ("done", "no_face") for f in frames)


def _high_speed_clip(path: Path, fps: int, frames: int) -> Path:
    """A valid MPEG-4 clip declaring `fps` frames per second (a high-speed camera's), each
    frame a flat grey whose level is its index mod 255 (PyAV writes it; OpenCV caps its own
    writer's rate)."""
    av = pytest.importorskip("av")
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), i % 255, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def test_a_10000_fps_video_is_sampled_by_time(tmp_path: Path) -> None:
    """A decodable 10,000 fps clip is a video like any other (it was 'corrupt or
    truncated'): 0.3 s sampled at 10 fps are three frames, each the one at its time."""
    clip = _high_speed_clip(tmp_path / "high-speed.mp4", 10_000, 3_000)
    info = probe(clip)
    assert info.native_fps == 10_000 and info.frames == 3_000 and info.duration_s == pytest.approx(0.3)
    samples = list(
        read_samples(clip, expected_samples(info.frames, info.native_fps, 10, 0, info.duration_s), 10, 10_000)
    )
    assert [s.timestamp_s for s in samples] == pytest.approx([0.0, 0.1, 0.2]) and all(s.error is None for s in samples)
    assert [int(s.rgb.mean()) for s in samples if s.rgb is not None] == pytest.approx(
        [0, 1000 % 255, 2000 % 255], abs=3
    )


def test_videos_linked_from_outside_the_allowed_roots_are_refused_unread(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """The video walk that `resume` runs for an interrupted scan applies the allowed roots as
    the image scan does: a link leading out of them is refused, never opened."""
    from producer.scan.walk import OUTSIDE_ROOTS
    from producer.videos import scan_videos

    root, outside = tmp_path / "library", tmp_path / "private"
    root.mkdir()
    outside.mkdir()
    clip = next(iter(clips.values()))
    shutil.copy(clip, root / f"inside{clip.suffix}")
    shutil.copy(clip, outside / f"secret{clip.suffix}")
    (root / f"escape{clip.suffix}").symlink_to(outside / f"secret{clip.suffix}")
    scanned = {Path(f.path).stem: f for f in scan_videos([root], allowed=[root])}
    assert scanned["escape"].error == OUTSIDE_ROOTS and not scanned["escape"].read
    assert scanned["inside"].error is None and scanned["inside"].read
    anywhere = {Path(f.path).stem: f for f in scan_videos([root])}
    assert anywhere["escape"].error is None  # no roots set: links are followed, as before
