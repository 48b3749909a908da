"""`producer live SOURCE`: a camera or a network stream analysed as it comes, into a job."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import click

from emotion_batch.config import DETECTOR_NAMES
from emotion_batch.live import LiveOptions, shown
from emotion_batch.messages import check_batch_size
from producer.cli.context import CliContext, console, out, shared_options
from producer.cli.follow import follow
from producer.cli.jobs import backend_option, batch_size_option
from producer.live import LiveJob, run_live


@contextmanager
def stop_on_sigint() -> Iterator[threading.Event]:
    """An event set by Ctrl-C (SIGINT) instead of KeyboardInterrupt, so sampling stops
    cleanly and its last partial segment is still handed on; a second Ctrl-C aborts."""
    stop = threading.Event()

    def handler(_signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        console.print("[yellow]stopping: the last frames go to the workers (Ctrl-C again to abort)")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


@click.command("live")
@click.argument("source")
@click.option(
    "--fps",
    type=click.FloatRange(min=0, min_open=True, max=120),
    default=None,
    help="Frames sampled per second of wall-clock time (default: the VIDEO_FPS setting, 1).",
)
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), help="Stop after this many seconds.")
@click.option("--name", help="Job name (default: the source, without its password).")
@click.option("--wait", is_flag=True, help="After sampling stops, wait until every frame is analysed.")
@click.option("--keep-frames", is_flag=True, help="Keep the sampled frames in the spool (LIVE_ROOT) once stored.")
@click.option("--timeout", type=float, default=None, help="With --wait: give up after this many seconds.")
@click.option("--detector", type=click.Choice(DETECTOR_NAMES), default=None, help="Face detector for this job.")
@backend_option
@batch_size_option
@shared_options
def live_cmd(
    c: CliContext,
    source: str,
    fps: float | None,
    duration: float | None,
    name: str | None,
    wait: bool,
    keep_frames: bool,
    timeout: float | None,
    detector: str | None,
    backend: str | None,
    batch_size: int | None,
) -> None:
    """Sample SOURCE (a camera: 0, /dev/video0; or a URL OpenCV's FFmpeg opens: rtsp://,
    http:// MJPEG, HLS) into a new job until --duration, Ctrl-C or the end of the source.
    Segments of sampled frames go to the workers as they fill. Prints the job id."""
    s = c.settings
    options = LiveOptions(fps or s.video_fps, s.video_segment_seconds, duration, s.live_reopen_seconds)
    job = LiveJob(
        backend or s.backend,
        check_batch_size(s.batch_size if batch_size is None else batch_size),
        s.queue,
        s.live_root,
        keep_frames,
        detector,
    )
    with stop_on_sigint() as stop:
        run = run_live(
            c.sessions,
            c.client,
            source,
            options,
            job,
            name or shown(source),
            stop,
            on_job=lambda job_id: console.print(f"job {job_id}: sampling {shown(source)} at {options.fps:g} fps"),
            notify=lambda line: console.print(f"[yellow]{line}", markup=False),
        )
    console.print(f"job {run.job_id}: {run.note}", markup=False, soft_wrap=True)
    out.print(run.job_id)
    if wait:
        follow(c, run.job_id, timeout, resume_stalled=True)
