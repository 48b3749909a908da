"""Submitting videos: find them by content, probe what each really holds, register each
with its time segments, and enqueue one task per segment.

Probing opens the container and reads at most a few frames (the first, the last it
claims, and a bisection when that fails), so a bad video gets its reason here, before
any worker time is spent on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from db.records import ScannedFile
from db.videos import ProbedVideo, pending_segments, register_videos
from emotion_batch.broker import send_segment
from emotion_batch.config import Settings
from emotion_batch.errors import ImageError
from emotion_batch.messages import SegmentMessage
from emotion_batch.video import is_video, probe
from producer.scan.hash import refused_outside, scan_file
from producer.scan.walk import RealPaths, ScanProblems, walk_files


@dataclass(frozen=True)
class VideoOptions:
    """How videos are sampled and split (from settings, `--fps` overriding)."""

    fps: float = 1.0
    segment_s: float = 60.0
    max_s: float = 4 * 3600.0

    @classmethod
    def from_settings(cls, settings: Settings, fps: float | None = None) -> VideoOptions:
        return cls(fps or settings.video_fps, settings.video_segment_seconds, settings.video_max_seconds)


@dataclass(frozen=True)
class VideoSubmit:
    """What happened to a job's videos at submit."""

    found: int = 0
    registered: int = 0
    duplicates: int = 0
    failed: int = 0
    segments: int = 0


def scan_videos(paths: Sequence[Path], threads: int = 4, allowed: Sequence[Path] = ()) -> list[ScannedFile]:
    """The video files under `paths`, hashed, in a stable order; one whose real path (a
    link followed) leaves the `allowed` roots (empty: anywhere) is refused, never read."""
    problems = ScanProblems([], [])  # the image scan reports these already
    found = walk_files([Path(r) for r in paths], problems)
    real = RealPaths(allowed) if allowed else None

    def scan(folder: str, path: str) -> ScannedFile:
        if real is not None and not real.allowed(folder, path):
            return refused_outside(path, folder, "video")
        return scan_file(Path(path))

    videos = [(folder, path) for folder, _name, path, _stat in found if is_video(Path(path))]
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="hash-video") as pool:
        return list(pool.map(lambda found: scan(*found), videos))


def probe_file(scanned: ScannedFile, max_s: float) -> ProbedVideo:
    """Probe one scanned video; its error (if any) is the reason recorded against it."""
    if scanned.error:
        return ProbedVideo(scanned, None, scanned.error)
    try:
        return ProbedVideo(scanned, probe(scanned.path, max_s))
    except ImageError as exc:
        return ProbedVideo(scanned, None, str(exc))


def enqueue_segments(
    client: Celery,
    job_id: int,
    segments: Sequence[tuple[int, int]],
    backend: str,
    batch_size: int,
    force: bool,
    queue: str,
) -> int:
    """Send one task per (video_id, segment_no)."""
    for video_id, segment_no in segments:
        send_segment(client, SegmentMessage(job_id, video_id, segment_no, backend, batch_size, force), queue)
    return len(segments)


def submit_videos(
    sessions: sessionmaker[Session],
    client: Celery,
    job_id: int,
    paths: Sequence[Path],
    *,
    backend: str,
    batch_size: int,
    force: bool,
    queue: str,
    options: VideoOptions,
    files: Sequence[ScannedFile] | None = None,
    allowed: Sequence[Path] = (),
) -> VideoSubmit:
    """Find, probe and register the videos under `paths` for `job_id` (or the scanned video
    `files` the image scan met on its walk); enqueue their segments. A video whose real
    path leaves the `allowed` roots is recorded as failed, never opened."""
    files = scan_videos(paths, allowed=allowed) if files is None else list(files)
    if not files:
        return VideoSubmit()
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="probe") as pool:
        probed = list(pool.map(lambda f: probe_file(f, options.max_s), files))
    with sessions() as session:
        registered, duplicates = register_videos(session, job_id, probed, options.fps, options.segment_s)
        segments = pending_segments(session, job_id)
    sent = enqueue_segments(client, job_id, segments, backend, batch_size, force, queue)
    failed = len({p.file.sha256 for p in probed if p.info is None})
    return VideoSubmit(len(files), registered, duplicates, failed, sent)


def resume_segments(
    sessions: sessionmaker[Session],
    client: Celery,
    job_id: int,
    backend: str,
    batch_size: int,
    force: bool,
    queue: str,
) -> int:
    """Re-enqueue a job's pending segments (same task ids; a finished one is skipped)."""
    with sessions() as session:
        segments = pending_segments(session, job_id)
    return enqueue_segments(client, job_id, segments, backend, batch_size, force, queue)
