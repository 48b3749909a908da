"""Celery configuration shared by the worker app and the producer's sending client.

The producer never imports the worker: it sends tasks by name with `send_task`.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Queue
from kombu.utils.url import maybe_sanitize_url

from emotion_batch.config import Settings
from emotion_batch.messages import ANALYZE_SEGMENT_TASK, ANALYZE_TASK, BatchMessage, SegmentMessage


def celery_config(settings: Settings, broker_url: str | None = None) -> dict[str, Any]:
    """The Celery settings every process of the system uses (broker: `settings.broker_url`)."""
    return {
        "broker_url": broker_url or settings.broker_url,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "event_serializer": "json",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": settings.soft_time_limit,
        "task_time_limit": settings.hard_time_limit,
        "broker_transport_options": {"visibility_timeout": settings.visibility_timeout},
        "broker_connection_retry_on_startup": True,
        "task_default_queue": settings.queue,
        "task_queues": (Queue(settings.queue),),
        "task_routes": {ANALYZE_TASK: {"queue": settings.queue}, ANALYZE_SEGMENT_TASK: {"queue": settings.queue}},
        "worker_max_memory_per_child": settings.max_memory_per_child_kb,
        # A new pool process loads TensorFlow and the models in worker_process_init:
        # Celery's default 4 s wait for it would kill every replacement child.
        "worker_proc_alive_timeout": 180.0,
        "worker_send_task_events": True,
        # No task-sent event: it doubled every publish (one event message per batch) and
        # nothing reads it; Flower lists tasks from the workers' received/started events.
        "task_send_sent_event": False,
    }


def make_client(settings: Settings, broker_url: str | None = None) -> Celery:
    """A Celery app that only sends: no tasks registered, same wire settings."""
    client = Celery("emotion_batch_producer")
    client.conf.update(celery_config(settings, broker_url))
    return client


def check_broker(client: Celery, retries: int = 2) -> None:
    """Fail fast (before any job is recorded) when the broker is unreachable or refuses us."""
    from kombu.exceptions import OperationalError

    from emotion_batch.errors import BrokerUnavailableError

    try:
        with client.connection_for_write() as connection:
            connection.ensure_connection(max_retries=retries, interval_start=0.2, interval_step=0.5)
    except (OperationalError, OSError) as exc:
        where = maybe_sanitize_url(client.conf.broker_url)  # a password masked, none shown where there is none
        startable = not _refused_us(exc)
        hint = f"; {START_REDIS}" if startable else ""
        message = f"cannot use the broker at {where}: {str(exc).rstrip('.')}{hint}"
        raise BrokerUnavailableError(message, startable=startable) from exc


START_REDIS = "start Redis there (Debian: apt-get install redis-server) or point REDIS_URL at a running one"


def _refused_us(exc: BaseException) -> bool:
    """True when a Redis answered but refused the credentials (starting one would not help)."""
    from redis.exceptions import AuthenticationError, ResponseError

    causes = [exc, exc.__cause__, exc.__context__, getattr(exc.__cause__, "__cause__", None)]
    return any(isinstance(c, AuthenticationError | ResponseError) for c in causes)


def send_batch(client: Celery, message: BatchMessage, queue: str, producer: Any = None) -> None:
    """Enqueue one batch under its deterministic task id (findable in Flower); pass a
    `producer` (`client.producer_or_acquire()`) to reuse one connection for many sends."""
    client.send_task(
        ANALYZE_TASK,
        args=(message.to_json(),),
        task_id=message.task_id,
        queue=queue,
        shadow=f"{ANALYZE_TASK}[job={message.job_id}]",  # bounded Flower/Prometheus labels
        producer=producer,
        # what Flower shows as the arguments; without it Celery writes a safe repr of the
        # whole batch into every message's headers, a third of a publish's CPU time
        argsrepr=f"(job {message.job_id}: {len(message.images)} images from id {message.batch_no})",
        kwargsrepr="{}",
    )


def send_segment(client: Celery, message: SegmentMessage, queue: str) -> None:
    """Enqueue one video segment under its deterministic task id."""
    client.send_task(
        ANALYZE_SEGMENT_TASK,
        args=(message.to_json(),),
        task_id=message.task_id,
        queue=queue,
        shadow=f"{ANALYZE_SEGMENT_TASK}[job={message.job_id}]",
    )
