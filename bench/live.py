"""Live sources' throughput: `python -m bench.live [--sources 1,2,4,8] [--seconds 120]`.

For each count N: N HTTP MJPEG streams (bench.mjpeg, 10 frames/s from the face photos,
on loopback) each sampled at 1 fps by its own `producer live --duration SECONDS` process,
into one Celery worker (concurrency 1, already warm) through a private redis-server and a
SQLite file. It reports, per N, the frames stored, the lag from a frame's capture to its
stored result (median, 95th percentile, max) and whether the worker fell behind: the lag
of the last third of the frames more than `VIDEO_SEGMENT_SECONDS` above the first
third's (a worker keeping up has a flat lag, one falling behind a growing one). It stops
at the first N that falls behind. The last line is one JSON object.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
from sqlalchemy import select

from bench.mjpeg import MjpegServer, jpeg_frames
from db.migrate import upgrade
from db.session import make_session_factory
from db.video_schema import Frame, Video
from emotion_batch.defaults import REPO_ROOT
from models.settings import data_settings
from producer.local import LocalRedis, LocalWorker

SEGMENT_SECONDS = 10


def _lags(database_url: str) -> list[tuple[float, float]]:
    """(seconds since its source's start, capture-to-stored lag) of every stored frame."""
    with make_session_factory(database_url)() as session:
        rows = session.execute(
            select(Frame.timestamp_s, Frame.captured_at, Frame.processed_at).join(Video, Video.id == Frame.video_id)
        ).all()
    return sorted((t, (done - captured).total_seconds()) for t, captured, done in rows if captured and done)


def _run(env: dict[str, str], urls: list[str], seconds: float) -> None:
    """One `producer live` per source, together, each waiting for its frames."""
    command = [sys.executable, "-m", "producer.cli", "live", "--fps", "1", "--duration", str(seconds), "--wait"]
    runs = [
        subprocess.Popen([*command, url], env={**os.environ, **env}, cwd=REPO_ROOT, stdout=subprocess.DEVNULL)
        for url in urls
    ]
    for run in runs:
        run.wait(timeout=seconds * 20 + 300)


def measure(count: int, seconds: float, env: dict[str, str], frames: list[bytes]) -> dict[str, Any]:
    """Run `count` sources for `seconds` into a fresh database; the lag figures."""
    servers = [MjpegServer(frames, rate=10).start() for _ in range(count)]
    try:
        _run(env, [s.url for s in servers], seconds)
    finally:
        for server in servers:
            server.stop()
    lags = _lags(env["DATABASE_URL"])
    values = np.array([lag for _, lag in lags]) if lags else np.zeros(1)
    third = max(1, len(values) // 3)
    behind = bool(values[-third:].mean() - values[:third].mean() > SEGMENT_SECONDS)
    return {
        "sources": count,
        "frames": len(lags),
        "lag_median_s": round(float(np.median(values)), 2),
        "lag_p95_s": round(float(np.percentile(values, 95)), 2),
        "lag_max_s": round(float(values.max()), 2),
        "fell_behind": behind,
    }


@click.command()
@click.option("--sources", default="1,2,4,8", help="Source counts to try, in order.")
@click.option("--seconds", type=float, default=120.0, help="Seconds each run samples.")
def main(sources: str, seconds: float) -> None:
    photos = sorted((data_settings().shared_data / "photos").glob("img*.jpg"))[:8]
    frames = jpeg_frames(photos)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp, LocalRedis(Path(tmp) / "redis") as redis:
        base = {
            "REDIS_URL": redis.url,
            "WORKER_BACKENDS": json.dumps(["cnn"]),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "LIVE_ROOT": str(Path(tmp) / "spool"),
            "VIDEO_SEGMENT_SECONDS": str(SEGMENT_SECONDS),
        }
        yunet = data_settings().shared_data / "detectors" / "face_detection_yunet_2023mar.onnx"
        if yunet.exists():  # the build machines have no internet: the shared copy
            base["YUNET_MODEL"] = str(yunet)
        for count in (int(n) for n in sources.split(",")):
            env = {**base, "DATABASE_URL": f"sqlite:///{Path(tmp) / f'live-{count}.db'}"}
            upgrade(env["DATABASE_URL"])
            with LocalWorker(env, concurrency=1, name=f"bench-live-{count}"):
                time.sleep(10)  # the worker loads its models before the clock matters
                result = measure(count, seconds, env, frames)
            results.append(result)
            click.echo(
                f"{count} sources at 1 fps: {result['frames']} frames, lag median {result['lag_median_s']} s, "
                f"p95 {result['lag_p95_s']} s, max {result['lag_max_s']} s"
                + (" - FELL BEHIND" if result["fell_behind"] else "")
            )
            if result["fell_behind"]:
                break
    held = max((r["sources"] for r in results if not r["fell_behind"]), default=0)
    click.echo(json.dumps({"bench": "live", "seconds": seconds, "sources_held": held, "runs": results}))


if __name__ == "__main__":
    main()
