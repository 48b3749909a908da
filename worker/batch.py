"""What one batch does: claim, reuse earlier results, analyse the rest, store in one go."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy.exc import OperationalError

from db.results import Claim, as_result, claim_attempt, fail_images, reusable, store_results
from db.session import make_session_factory
from emotion_batch.messages import BatchMessage
from worker import runtime

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchSummary:
    """What a batch did (the task's return value, shown in Flower)."""

    job_id: int
    batch_no: int
    analysed: int
    reused: int
    written: int
    exhausted: int
    faces: int
    seconds: float

    def to_json(self) -> dict[str, float | int]:
        return self.__dict__.copy()


def process_batch(message: BatchMessage) -> BatchSummary:
    """Analyse a batch's pending images with one classifier call and one write."""
    started = time.perf_counter()
    settings = runtime.settings()
    sessions = make_session_factory(settings.database_url)
    with sessions() as session:
        claim = claim_attempt(session, [r.image_id for r in message.images], settings.max_attempts)
    if not claim.live:
        return BatchSummary(message.job_id, message.batch_no, 0, 0, 0, len(claim.exhausted), 0, 0.0)
    try:
        return _analyse_claimed(message, claim, started)
    except OperationalError:
        raise  # the database is busy or away: the task retries with backoff
    except Exception as exc:  # noqa: BLE001 - recorded against the images, never lost
        logger.exception("job %s batch %s failed", message.job_id, message.batch_no)
        reason = f"batch error {type(exc).__name__}: {exc}"[:500]
        with sessions() as session:
            written = fail_images(session, list(claim.live), reason)
        return BatchSummary(message.job_id, message.batch_no, 0, 0, written, len(claim.exhausted), 0,
                            round(time.perf_counter() - started, 3))


def _analyse_claimed(message: BatchMessage, claim: Claim, started: float) -> BatchSummary:
    settings = runtime.settings()
    sessions = make_session_factory(settings.database_url)
    analyzer = runtime.analyzer(message.backend)
    version = analyzer.classifier.model_version
    with sessions() as session:
        earlier = {} if message.force else reusable(
            session, [sha for _, sha in claim.live.values()], message.backend, version
        )
        reused = {i: earlier[sha] for i, (_, sha) in claim.live.items() if sha in earlier}
        results = {i: as_result(image) for i, image in reused.items()}
    todo = [i for i in claim.live if i not in reused]
    results.update(zip(todo, analyzer.analyze([claim.live[i][0] for i in todo])))
    with sessions() as session:
        written = store_results(session, results, message.backend, version, reused)
    faces = sum(len(r.faces) for r in results.values())
    seconds = time.perf_counter() - started
    logger.info("job %s batch %s: %d images, %d faces in %.2fs", message.job_id, message.batch_no, len(results), faces, seconds)
    return BatchSummary(
        message.job_id, message.batch_no, len(todo), len(reused), written,
        len(claim.exhausted), faces, round(seconds, 3),
    )
