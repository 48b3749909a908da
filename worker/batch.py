"""What one batch does: claim, reuse earlier results, analyse the rest, store in one go.

A batch whose images were delivered before (its process was killed, or it ran out of
time and was retried) is processed in isolation: each image claimed, analysed and
stored on its own, so a poison image uses up only its own attempts and the others complete.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

from billiard.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from db.results import (
    Claim, ResultKey, as_result, claim_attempt, fail_images, pending_attempts, reusable, store_results,
)
from db.session import make_session_factory
from emotion_batch.messages import BatchMessage
from worker import runtime

logger = logging.getLogger(__name__)


@dataclass
class BatchSummary:
    """What a batch did (the task's return value, shown in Flower)."""

    job_id: int
    batch_no: int
    analysed: int = 0
    reused: int = 0
    written: int = 0
    exhausted: int = 0
    faces: int = 0
    isolated: bool = False
    seconds: float = 0.0

    def add(self, analysed: int, reused: int, written: int, faces: int) -> None:
        self.analysed += analysed
        self.reused += reused
        self.written += written
        self.faces += faces

    def to_json(self) -> dict[str, float | int | bool]:
        return asdict(self)


def process_batch(message: BatchMessage) -> BatchSummary:
    """Analyse a batch: all images in one classifier call, or one by one after a crash."""
    started = time.perf_counter()
    settings = runtime.settings()
    sessions = make_session_factory(settings.database_url)
    ids = [ref.image_id for ref in message.images]
    with sessions() as session:
        attempts = pending_attempts(session, ids)
    summary = BatchSummary(message.job_id, message.batch_no, isolated=any(attempts.values()))
    groups = [[i] for i in attempts] if summary.isolated else [list(attempts)]
    for group in groups:
        with sessions() as session:
            claim = claim_attempt(session, group, settings.max_attempts)
        summary.exhausted += len(claim.exhausted)
        if claim.live:
            _analyse_guarded(message, claim, summary, sessions)
    summary.seconds = round(time.perf_counter() - started, 3)
    logger.info("job %s batch %s: %s", message.job_id, message.batch_no, summary)
    return summary


def _analyse_guarded(
    message: BatchMessage, claim: Claim, summary: BatchSummary, sessions: sessionmaker[Session]
) -> None:
    """Analyse claimed images; an unexpected error is recorded against them, never lost."""
    try:
        _analyse_claimed(message, claim, summary, sessions)
    except (OperationalError, SoftTimeLimitExceeded):
        raise  # database busy or away / out of time: the task is retried (worker.tasks)
    except Exception as exc:  # noqa: BLE001
        logger.exception("job %s batch %s failed", message.job_id, message.batch_no)
        reason = f"batch error {type(exc).__name__}: {exc}"[:500]
        with sessions() as session:
            summary.written += fail_images(session, list(claim.live), reason)


def _analyse_claimed(
    message: BatchMessage, claim: Claim, summary: BatchSummary, sessions: sessionmaker[Session]
) -> None:
    analyzer = runtime.analyzer(message.backend)
    key = ResultKey(message.backend, analyzer.classifier.model_version, analyzer.detector_version)
    with sessions() as session:
        earlier = {} if message.force else reusable(session, [sha for _, sha in claim.live.values()], key)
        reused = {i: earlier[sha] for i, (_, sha) in claim.live.items() if sha in earlier}
        results = {i: as_result(image) for i, image in reused.items()}
    todo = [i for i in claim.live if i not in reused]
    results.update(zip(todo, analyzer.analyze([claim.live[i][0] for i in todo])))
    with sessions() as session:
        written = store_results(session, results, key, reused)
    summary.add(len(todo), len(reused), written, sum(len(r.faces) for r in results.values()))
