"""The two measurements of our own pipeline: `ceiling` (in process: decode -> detect ->
batched classify, no queue, no database) and `system` (producer -> Redis -> Celery
worker -> database, from submit until the last image is stored, worker already warm)."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from bench.baselines import Timing
from db.migrate import upgrade
from db.schema import Image
from db.session import make_session_factory
from emotion_batch.broker import make_client
from emotion_batch.classify import EmotionClassifier
from emotion_batch.config import Settings
from producer.local import LocalRedis, LocalWorker, memory_kb


@dataclass
class Stages:
    """Where the ceiling's time goes: decode + detect + crop (threads), and classify."""

    detect_seconds: float = 0.0
    classify_seconds: float = 0.0


class TimedClassifier:
    """An `EmotionClassifier` that adds the time each call of the wrapped one takes to
    `stages.classify_seconds` (what the ceiling reports as classify time)."""

    def __init__(self, inner: EmotionClassifier, stages: Stages) -> None:
        self.inner, self.stages = inner, stages
        self.name, self.labels, self.model_version = inner.name, inner.labels, inner.model_version
        self.timing = False

    def predict(self, faces: np.ndarray) -> np.ndarray:
        begin = time.perf_counter()
        try:
            return self.inner.predict(faces)
        finally:
            if self.timing:
                self.stages.classify_seconds += time.perf_counter() - begin


def ceiling(paths: Sequence[Path], settings: Settings, backend: str, stages: Stages | None = None) -> Timing:
    """Our pipeline in this process, batch after batch (first batch warms up, untimed)."""
    from emotion_batch.classify import make_classifier
    from emotion_batch.detect import make_detector
    from emotion_batch.pipeline import Analyzer

    stages = stages if stages is not None else Stages()
    classifier = TimedClassifier(make_classifier(backend, settings), stages)
    analyzer = Analyzer(lambda: make_detector(settings), classifier, settings)
    names = [str(p) for p in paths]
    analyzer.analyze(names[: settings.batch_size])
    classifier.timing = True
    started = time.perf_counter()
    faces = 0
    for start in range(0, len(names), settings.batch_size):
        faces += sum(len(r.faces) for r in analyzer.analyze(names[start : start + settings.batch_size]))
    analyzer.close()
    seconds = time.perf_counter() - started
    stages.detect_seconds = seconds - stages.classify_seconds
    return Timing(len(names), faces, seconds)


@dataclass
class SystemRun:
    """The full system's timing plus the worker's memory over the job."""

    timing: Timing
    peak_mb: float
    rss_samples_mb: list[float] = field(default_factory=list)
    job_id: int | None = None
    log_file: Path | None = None  # the worker's log (its tasks' times: bench.profile)

    @property
    def baseline_mb(self) -> float:
        """RSS once warmed up: the sample a tenth of the way through the job."""
        return self.rss_samples_mb[len(self.rss_samples_mb) // 10]

    @property
    def growth(self) -> float:
        """RSS growth from the warmed-up baseline to the end of the job."""
        first, last = self.baseline_mb, self.rss_samples_mb[-1]
        return (last - first) / first if first else 0.0

    def trajectory(self) -> str:
        """RSS at 0, 10, 25, 50, 75 and 100% of the job, in MB."""
        n = len(self.rss_samples_mb) - 1
        return " -> ".join(f"{self.rss_samples_mb[int(n * f)]:.0f}" for f in (0, 0.1, 0.25, 0.5, 0.75, 1))


def _pool_memory(worker: LocalWorker) -> tuple[float, float]:
    stats = [memory_kb(pid) for pid in worker.pool_pids()]
    rss = sum(s.get("VmRSS", 0) for s in stats) / 1024
    peak = max((s.get("VmHWM", 0) for s in stats), default=0) / 1024
    return rss, peak


def _run_job(settings: Settings, folder: Path, backend: str, worker: LocalWorker, samples: list[float]) -> int:
    from producer.resume import wait_for_job
    from producer.submit import SubmitOptions, submit

    sessions = make_session_factory(settings.database_url)
    client = make_client(settings)
    options = SubmitOptions(backend, settings.batch_size, f"bench {folder.name}", settings.queue, force=True)
    result = submit(sessions, client, [folder], options)
    wait_for_job(sessions, result.job_id, interval=0.2, on_progress=lambda _p: samples.append(_pool_memory(worker)[0]))
    return result.job_id


def system(folder: Path, warmup: Path, settings: Settings, backend: str, concurrency: int) -> SystemRun:
    """Submit `folder` to a warm worker; time from submit to the last stored image."""
    tmp = Path(tempfile.mkdtemp(prefix="emotion-bench-"))
    with LocalRedis(tmp / "redis") as redis:
        url = f"sqlite:///{tmp / 'bench.db'}"
        live = settings.model_copy(update={"redis_url": redis.url, "database_url": url})
        upgrade(url)
        env = {
            "REDIS_URL": redis.url,
            "DATABASE_URL": url,
            "WORKER_BACKENDS": json.dumps([backend]),
            "BATCH_SIZE": str(settings.batch_size),
        }
        with LocalWorker(env, concurrency=concurrency, name="bench", log_file=tmp / "worker.log") as worker:
            _run_job(live, warmup, backend, worker, [])
            samples: list[float] = []
            started = datetime.now(timezone.utc)
            job = _run_job(live, folder, backend, worker, samples)
            rss, peak = _pool_memory(worker)
            samples.append(rss)
    with make_session_factory(url)() as session:
        last = session.scalar(select(func.max(Image.processed_at)).where(Image.job_id == job))
        count = session.scalar(select(func.count(Image.id)).where(Image.job_id == job))
        faces = session.scalar(select(func.sum(Image.face_count)).where(Image.job_id == job))
    assert last is not None and count is not None, "the job stored no image"
    last = last if last.tzinfo else last.replace(tzinfo=timezone.utc)
    seconds = (last - started).total_seconds()
    return SystemRun(Timing(int(count), int(faces or 0), seconds), peak, samples, job, tmp / "worker.log")
