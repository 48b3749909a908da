"""Per-process state of a worker: the detector and classifiers, loaded once.

`init_process` runs in `worker_process_init` (after the pool forks). A backend that is
not preloaded is loaded on its first batch and kept, never per message.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np

from emotion_batch.config import Settings
from emotion_batch.detect import for_detector, make_detector
from emotion_batch.pipeline import Analyzer

logger = logging.getLogger(__name__)

_settings: Settings | None = None
_analyzers: dict[str, Analyzer] = {}
pool_size = 1  # set in the parent by worker.app before the pool forks


def threads_per_process(settings: Settings) -> int:
    """Threads each pool process may use: TF_THREADS, else the cores shared by the pool."""
    return settings.tf_threads or max(1, (os.cpu_count() or 1) // max(1, pool_size))


def init_process(settings: Settings) -> None:
    """Configure TensorFlow and load the detector and the preloaded backends."""
    global _settings
    from emotion_batch.tfsetup import configure_tensorflow

    started = time.perf_counter()
    threads = threads_per_process(settings)
    gpus = configure_tensorflow(threads)
    detector = make_detector(settings).name  # fails here, not in a batch, if its file is missing
    _settings = settings
    for backend in settings.worker_backends:
        analyzer(backend)
    _report_database(settings.database_url)
    logger.info(
        "worker process %s ready in %.1fs: detector=%s backends=%s gpus=%s threads=%d",
        os.getpid(),
        time.perf_counter() - started,
        detector,
        list(_analyzers),
        gpus,
        threads,
    )


def _report_database(url: str) -> None:
    """Say at start, clearly, when the database cannot be reached (batches then wait and
    retry until it can: none is dropped)."""
    from db.session import check_database
    from emotion_batch.errors import DatabaseUnavailableError

    try:
        check_database(url)
    except DatabaseUnavailableError as exc:
        logger.error(
            "worker process %s cannot reach its database: %s; batches are retried until it can", os.getpid(), exc
        )


def analyzer(backend: str, detector: str | None = None) -> Analyzer:
    """The process's analyzer for `backend`, loading its classifier the first time; with
    `detector` (a job's own choice), one that shares that classifier and uses `detector`."""
    if _settings is None:  # a solo/threads pool has no process init
        from emotion_batch.config import get_settings

        init_process(get_settings())
    assert _settings is not None
    if backend not in _analyzers:
        built = Analyzer.from_settings(_settings, backend, threads=threads_per_process(_settings))
        built.classifier.predict(np.zeros((2, 48, 48, 1), np.uint8))  # trace/warm up outside any task
        _analyzers[backend] = built
    chosen = for_detector(_settings, detector)
    if chosen is _settings:
        return _analyzers[backend]
    key = f"{backend}/{detector}"
    if key not in _analyzers:
        _analyzers[key] = Analyzer(
            lambda: make_detector(chosen), _analyzers[backend].classifier, chosen, threads=threads_per_process(chosen)
        )
    return _analyzers[key]


def settings() -> Settings:
    """The settings this process was initialised with."""
    assert _settings is not None, "worker process not initialised"
    return _settings


def shutdown_process() -> None:
    """Release decode threads."""
    for item in _analyzers.values():
        item.close()
    _analyzers.clear()
