"""Thin Celery tasks: decode the message, hand it to worker.batch."""

from __future__ import annotations

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import OperationalError

from emotion_batch.messages import ANALYZE_SEGMENT_TASK, ANALYZE_TASK, BatchMessage, SegmentMessage
from worker.app import app
from worker.batch import process_batch


@app.task(
    name=ANALYZE_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    # Database busy or away, or out of time (retried image by image): try again later.
    autoretry_for=(OperationalError, SoftTimeLimitExceeded),
    retry_backoff=1,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=20,
)
def analyze_batch(message: dict) -> dict:
    """Analyse one batch of images (ids and paths; never pixels)."""
    return process_batch(BatchMessage.from_json(message)).to_json()


@app.task(
    name=ANALYZE_SEGMENT_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, SoftTimeLimitExceeded),
    retry_backoff=1,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=20,
)
def analyze_segment(message: dict) -> dict:
    """Sample, analyse and store one time segment of a video (ids only on the wire)."""
    from worker.segments import process_segment

    return process_segment(SegmentMessage.from_json(message)).to_json()
