"""The Celery app: configuration and process signals. Tasks live in worker.tasks."""

from __future__ import annotations

import logging
import os

from celery import Celery
from celery.signals import worker_init, worker_process_init, worker_process_shutdown

from emotion_batch.broker import celery_config
from emotion_batch.config import get_settings

logger = logging.getLogger(__name__)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the worker is an application: quiet TF's C++ logs
_settings = get_settings()
app = Celery("emotion_batch", include=["worker.tasks"])
app.conf.update(celery_config(_settings))


@worker_init.connect
def _remember_concurrency(sender: object = None, **_kwargs: object) -> None:
    """In the parent, before forking: how many pool processes will share the cores."""
    from worker import runtime

    runtime.pool_size = int(getattr(sender, "concurrency", 1) or 1)


@worker_process_init.connect
def _load_models(**_kwargs: object) -> None:
    """Load detector and classifiers once per worker process, after the fork."""
    from worker import runtime

    runtime.init_process(get_settings())


@worker_process_shutdown.connect
def _unload(**_kwargs: object) -> None:
    from worker import runtime

    runtime.shutdown_process()
