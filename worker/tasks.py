"""Thin Celery tasks: decode the message, hand it to worker.batch."""

from __future__ import annotations

import logging

from celery.exceptions import Reject, SoftTimeLimitExceeded

from emotion_batch.errors import MessageError
from emotion_batch.messages import ANALYZE_SEGMENT_TASK, ANALYZE_TASK, BatchMessage, SegmentMessage
from worker.app import app
from worker.batch import DB_RETRY_ERRORS, process_batch, reconnect_on_database_error

logger = logging.getLogger(__name__)


# Acknowledged after the work, redelivered when the process dies. Database busy,
# read-only or away, or out of time (retried image by image, or the segment again): try
# again later. No retry limit: a task whose work is pending is never dropped (time-limit
# retries end anyway, as each image's and each segment's attempts are counted). A task
# killed at the hard time limit is not acknowledged either: Celery's default acks it, and
# its unfinished images would wait pending for a `resume`; requeued, its next delivery
# claims them again and gives up on each after its attempts.
DELIVERY = {
    "acks_late": True,
    "acks_on_failure_or_timeout": False,
    "reject_on_worker_lost": True,
    "autoretry_for": (*DB_RETRY_ERRORS, SoftTimeLimitExceeded),
    "retry_backoff": 1,
    "retry_backoff_max": 30,
    "retry_jitter": True,
    "max_retries": None,
}


@app.task(bind=True, name=ANALYZE_TASK, **DELIVERY)
def analyze_batch(self, message: dict) -> dict:  # noqa: ANN001 (the bound Celery task)
    """Analyse one batch of images (ids and paths; never pixels)."""
    try:
        return process_batch(BatchMessage.from_json(message), self.request.id).to_json()
    except MessageError as exc:
        logger.error("refused message %s: %s", self.request.id, exc)
        raise Reject(str(exc), requeue=False) from exc


@app.task(bind=True, name=ANALYZE_SEGMENT_TASK, **DELIVERY)
def analyze_segment(self, message: dict) -> dict:  # noqa: ANN001 (the bound Celery task)
    """Sample, analyse and store one time segment of a video (ids only on the wire)."""
    from worker.segments import process_segment

    try:
        segment = SegmentMessage.from_json(message)
    except MessageError as exc:
        logger.error("refused message %s: %s", self.request.id, exc)
        raise Reject(str(exc), requeue=False) from exc
    with reconnect_on_database_error(f"segment {segment.segment_no} of video {segment.video_id}"):
        return process_segment(segment).to_json()
