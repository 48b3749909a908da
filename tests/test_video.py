"""Videos with real parts, one file at a time: clips written with cv2.VideoWriter from the
face photos and broken ones, recognised by content, probed, sampled at their rate, cut
into segments, refused with clear reasons; a failed segment back to pending. The whole
system (worker, report) is test_video_system's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from bench.videoclips import frame_index_of
from db.session import make_session_factory
from db.video_schema import Video
from db.videos import segment_bounds
from emotion_batch.errors import AudioOnlyError, CorruptVideoError, EmptyFileError, VideoTooLongError
from emotion_batch.video import expected_samples, is_video, probe, read_samples, sniff_video
from tests.video_support import (
    NATIVE_FPS,
    clips,  # noqa: F401 (a fixture)
    stored_frames,
)


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
        assert len(stored_frames(url, video.id)) == 8 and all(
            f.status == "failed" for f in stored_frames(url, video.id)
        )
        assert reset_failed_segments(session, job.id) == 1
        session.expire_all()
        assert (video.status, video.segments[0].status, video.segments[0].attempts) == ("pending", "pending", 0)
        assert stored_frames(url, video.id) == []


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
