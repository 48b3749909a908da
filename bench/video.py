"""Video throughput: `python -m bench.video [--minutes 10] [--size 1280x720] [--fps 1]`.

Generates a clip from the face photos (`bench.videoclips`, MPEG-4 Part 2 in MP4, 25 fps,
faces moving and changing every 4 s; cached under the temp folder) and measures, side by
side on this machine:

- `decode all`: the naive way, `cap.read()` on every native frame, keeping one per sample;
- `sample`: our sampler alone (frames between samples grabbed or skipped by seeking);
- `ceiling`: our sampler + the photo pipeline in one process (detect -> crop -> one
  classify call per batch of frames), no queue, no database;
- `system`: producer -> Redis -> one Celery worker -> SQLite, one task per segment, from
  submit until the video's last segment is stored (worker already warm), with the worker's
  memory over the run.

It prints sampled frames per second and the real-time factor (video seconds per wall
second), against py-feat's published CPU figure (9-13 frames/s; its `detect_video` decodes
and analyses frames one by one) as context. The last line is one JSON object.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
import cv2
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from bench.videoclips import write_clip
from db.migrate import upgrade
from db.session import make_session_factory
from db.video_schema import Frame, Video, VideoSegment
from emotion_batch.broker import make_client
from emotion_batch.config import Settings
from emotion_batch.video import expected_samples, probe, read_samples
from models.settings import data_settings
from producer.local import LocalRedis, LocalWorker, memory_kb

PYFEAT_CPU_FPS = (9.0, 13.0)  # py-feat's published CPU frames/s (context, not measured here)
console = Console()


def make_clip(photos: Path, minutes: float, size: tuple[int, int], cache: Path) -> Path:
    """The generated clip (made once per length and size, then reused)."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"bench-{minutes:g}min-{size[0]}x{size[1]}.mp4"
    if not path.exists():
        started = time.perf_counter()
        partial = path.with_suffix(".partial.mp4")
        write_clip(partial, sorted(photos.glob("*.jpg")), minutes * 60, size=size)
        partial.rename(path)
        console.print(f"wrote {path} in {time.perf_counter() - started:.0f} s")
    return path


def decode_all(path: Path, fps: float) -> tuple[int, float]:
    """Read every frame (BGR conversion included), keep one per sample: (kept, seconds)."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    native = cap.get(cv2.CAP_PROP_FPS)
    started, index, kept = time.perf_counter(), 0, 0
    while True:
        ok, _frame = cap.read()
        if not ok:
            break
        if index >= kept * native / fps - 1e-6:
            kept += 1
        index += 1
    cap.release()
    return kept, time.perf_counter() - started


def sample_only(path: Path, fps: float) -> tuple[int, float]:
    info = probe(path)
    wanted = expected_samples(info.frames, info.native_fps, fps, 0.0, info.duration_s)
    started = time.perf_counter()
    count = sum(1 for s in read_samples(path, wanted, fps, info.native_fps) if s.rgb is not None)
    return count, time.perf_counter() - started


def ceiling(path: Path, fps: float, settings: Settings, backend: str) -> tuple[int, int, float]:
    """Sampler + photo pipeline in this process: (frames, faces, seconds)."""
    from db.videos import SegmentWork
    from emotion_batch.classify import make_classifier
    from emotion_batch.detect import make_detector
    from emotion_batch.pipeline import Analyzer
    from worker.segments import analyse_samples

    analyzer = Analyzer(lambda: make_detector(settings), make_classifier(backend, settings), settings)
    info = probe(path)
    wanted = expected_samples(info.frames, info.native_fps, fps, 0.0, info.duration_s)
    head = wanted[: settings.batch_size]
    work = SegmentWork(0, 0, 0, str(path), fps, info.native_fps, head, [k / fps for k in head])
    list(analyse_samples(analyzer, work, settings.batch_size))  # warm-up, untimed
    work = SegmentWork(0, 0, 0, str(path), fps, info.native_fps, wanted, [k / fps for k in wanted])
    started = time.perf_counter()
    results = list(analyse_samples(analyzer, work, settings.batch_size))
    seconds = time.perf_counter() - started
    analyzer.close()
    return len(results), sum(len(r.faces) for _, _, r in results), seconds


def _pool_rss_mb(worker: LocalWorker) -> tuple[float, float]:
    stats = [memory_kb(pid) for pid in worker.pool_pids()]
    return (sum(s.get("VmRSS", 0) for s in stats) / 1024, max((s.get("VmHWM", 0) for s in stats), default=0) / 1024)


def system(path: Path, warmup: Path, fps: float, settings: Settings, backend: str) -> dict[str, Any]:
    """The clip through Redis, one warm worker and SQLite; memory sampled while it runs."""
    from producer.resume import wait_for_job
    from producer.submit import SubmitOptions, submit
    from producer.videos import VideoOptions

    tmp = Path(tempfile.mkdtemp(prefix="emotion-bench-video-"))
    with LocalRedis(tmp / "redis") as redis:
        url = f"sqlite:///{tmp / 'bench.db'}"
        live = settings.model_copy(update={"redis_url": redis.url, "database_url": url})
        upgrade(url)
        env = {"REDIS_URL": redis.url, "DATABASE_URL": url, "WORKER_BACKENDS": json.dumps([backend])}
        sessions = make_session_factory(url)
        client = make_client(live, redis.url)
        options = VideoOptions(fps, settings.video_segment_seconds, settings.video_max_seconds)
        rss: list[float] = []
        with LocalWorker(env, concurrency=1, name="bench-video", log_file=tmp / "worker.log") as worker:
            for clip in (warmup, path):
                rss.clear()
                started = datetime.now(timezone.utc)
                chosen = SubmitOptions(
                    backend, settings.batch_size, clip.name, settings.queue, force=True, video=options
                )
                job = submit(sessions, client, [clip], chosen).job_id
                wait_for_job(sessions, job, interval=0.25, on_progress=lambda _p: rss.append(_pool_rss_mb(worker)[0]))
            peak = _pool_rss_mb(worker)[1]
    with sessions() as session:
        video = session.scalars(select(Video).where(Video.job_id == job)).one()
        last = session.scalar(select(func.max(VideoSegment.processed_at)).where(VideoSegment.video_id == video.id))
        frames = session.scalar(select(func.count(Frame.id)).where(Frame.video_id == video.id))
        faces = session.scalar(select(func.sum(Frame.face_count)).where(Frame.video_id == video.id))
        segments = len(video.segments)
    assert last is not None and frames is not None, "the video stored no frame"
    last = last if last.tzinfo else last.replace(tzinfo=timezone.utc)
    seconds = (last - started).total_seconds()
    n = len(rss) - 1
    trajectory = [round(rss[int(n * f)]) for f in (0.1, 0.25, 0.5, 0.75, 1.0)] if rss else []
    return {
        "frames": int(frames),
        "faces": int(faces or 0),
        "seconds": seconds,
        "segments": segments,
        "peak_mb": round(peak),
        "rss_mb": trajectory,
    }


def _table(
    rows: dict[str, tuple[int, int | None, float]], seconds_of_video: float, size: str, fps: float
) -> tuple[Table, dict[str, object]]:
    """The printed table of every measured row, and the same figures for the JSON line."""
    table = Table(title=f"{platform.machine()}, {os.cpu_count()} cores")
    for column in ("what", "frames", "faces", "seconds", "frames/s", "x real time"):
        table.add_column(column, justify="left" if column == "what" else "right")
    result: dict[str, object] = {"video_s": seconds_of_video, "size": size, "sample_fps": fps}
    for name, (frames, faces, secs) in rows.items():
        rate = frames / secs if secs else 0.0
        table.add_row(
            name,
            str(frames),
            "-" if faces is None else str(faces),
            f"{secs:.1f}",
            f"{rate:.1f}",
            f"{seconds_of_video / secs:.1f}",
        )
        result[name] = {
            "frames": frames,
            "faces": faces,
            "seconds": round(secs, 2),
            "frames_per_s": round(rate, 1),
            "realtime_x": round(seconds_of_video / secs, 1),
        }
    return table, result


@click.command()
@click.option(
    "--photos",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="Face photos for the clip (default: ../shared/data/photos).",
)
@click.option("--minutes", type=float, default=10.0, show_default=True)
@click.option("--size", default="1280x720", show_default=True)
@click.option("--fps", type=float, default=1.0, show_default=True, help="Frames sampled per second.")
@click.option("--backend", type=click.Choice(["cnn", "deepface"]), default="cnn", show_default=True)
@click.option("--skip-system", is_flag=True, help="Only the in-process measurements.")
@click.option("--cache", type=click.Path(path_type=Path), default=Path(tempfile.gettempdir()) / "emotion-bench-clips")
def main(
    photos: Path | None, minutes: float, size: str, fps: float, backend: str, skip_system: bool, cache: Path
) -> None:
    settings = Settings()
    photos = photos or data_settings().shared_data / "photos"
    width, height = (int(v) for v in size.split("x"))
    clip = make_clip(photos, minutes, (width, height), cache)
    warmup = make_clip(photos, 0.25, (width, height), cache)
    seconds_of_video = probe(clip).duration_s
    console.print(
        f"clip {clip.name}: {seconds_of_video:.0f} s of {width}x{height} at 25 fps, sampled at {fps:g} fps; "
        f"backend {backend}; {platform.machine()}, {os.cpu_count()} cores"
    )
    rows: dict[str, tuple[int, int | None, float]] = {}
    kept, secs = decode_all(clip, fps)
    rows["decode all"] = (kept, None, secs)
    kept, secs = sample_only(clip, fps)
    rows["sample"] = (kept, None, secs)
    rows["ceiling"] = ceiling(clip, fps, settings, backend)
    run = None
    if not skip_system:
        run = system(clip, warmup, fps, settings, backend)
        rows["system"] = (run["frames"], run["faces"], run["seconds"])
    table, result = _table(rows, seconds_of_video, size, fps)
    console.print(table)
    best = rows.get("system", rows["ceiling"])
    rate = best[0] / best[2]
    console.print(
        f"py-feat's published CPU figure: {PYFEAT_CPU_FPS[0]:g}-{PYFEAT_CPU_FPS[1]:g} frames/s "
        f"(context, other hardware): ours {rate:.1f} frames/s = "
        f"{rate / PYFEAT_CPU_FPS[1]:.1f}-{rate / PYFEAT_CPU_FPS[0]:.1f}x"
    )
    console.print(f"sampler vs decoding every frame: {rows['decode all'][2] / rows['sample'][2]:.1f}x faster")
    if run:
        console.print(
            f"system: {run['segments']} segments; worker RSS MB at 10/25/50/75/100%: "
            f"{' -> '.join(str(v) for v in run['rss_mb'])}; peak {run['peak_mb']} MB"
        )
        result["system"]["segments"] = run["segments"]  # type: ignore[index]
        result["worker_rss_mb"], result["worker_peak_mb"] = run["rss_mb"], run["peak_mb"]
    target = seconds_of_video / best[2]
    console.print(
        f"target: {seconds_of_video:.0f} s of video in < {seconds_of_video / 10:.0f} s (>= 10x real time): "
        f"{'met' if target >= 10 else 'NOT met'} ({target:.1f}x)"
    )
    console.print(json.dumps(result), soft_wrap=True)


if __name__ == "__main__":
    main()
