"""Thin Celery tasks: decode the message, hand it to worker.batch."""

from __future__ import annotations

import logging

from celery.exceptions import Reject, SoftTimeLimitExceeded

from emotion_batch.errors import MessageError
from emotion_batch.messages import ANALYZE_SEGMENT_TASK, ANALYZE_TASK, BatchMessage, SegmentMessage
from worker.app import app
from worker.batch import DB_RETRY_ERRORS, process_batch, reconnect_on_database_error

logger = logging.getLogger(__name__)


@app.task(
    bind=True,
    name=ANALYZE_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    # Database busy, read-only or away, or out of time (retried image by image): try
    # again later. No retry limit: a batch whose images are pending is never dropped
    # (time-limit retries end anyway, as each image's attempts are counted).
    autoretry_for=(*DB_RETRY_ERRORS, SoftTimeLimitExceeded),
    retry_backoff=1,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=None,
)
def analyze_batch(self, message: dict) -> dict:  # noqa: ANN001 (the bound Celery task)
    """Analyse one batch of images (ids and paths; never pixels)."""
    try:
        return process_batch(BatchMessage.from_json(message), self.request.id).to_json()
    except MessageError as exc:
        logger.error("refused message %s: %s", self.request.id, exc)
        raise Reject(str(exc), requeue=False) from exc


@app.task(
    name=ANALYZE_SEGMENT_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(*DB_RETRY_ERRORS, SoftTimeLimitExceeded),
    retry_backoff=1,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=20,
)
def analyze_segment(message: dict) -> dict:
    """Sample, analyse and store one time segment of a video (ids only on the wire)."""
    from worker.segments import process_segment

    with reconnect_on_database_error(f"segment {message.get('segment_no')} of video {message.get('video_id')}"):
        return process_segment(SegmentMessage.from_json(message)).to_json()
