"""What one batch does: claim, reuse earlier results, analyse the rest, store in one go.

A batch whose images were delivered before (its process was killed, or it ran out of
time and was retried) is processed in isolation: each image claimed, analysed and
stored on its own, so a poison image uses up only its own attempts and the others complete.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace

from billiard.exceptions import SoftTimeLimitExceeded
from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from db.results import (
    Claim,
    ResultKey,
    as_result,
    claim_attempt,
    fail_images,
    pending_attempts,
    reusable,
    store_results,
)
from db.schema import Image, Job
from db.session import make_engine, make_session_factory
from emotion_batch.config import Settings
from emotion_batch.errors import MessageError
from emotion_batch.messages import BatchMessage
from emotion_batch.pipeline import Analyzer, ImageResult
from worker import runtime

logger = logging.getLogger(__name__)
AnalyzerFor = Callable[[str, str | None], Analyzer]  # (backend, the job's detector) -> Analyzer

# Database busy, read-only, away or disconnected: the batch is retried, never dropped.
DB_RETRY_ERRORS = (OperationalError, InterfaceError)
LEASE_MARGIN_S = 60  # a claim outlives the hard time limit by this much


@dataclass
class BatchSummary:
    """What a batch did (the task's return value, shown in Flower)."""

    job_id: int
    batch_no: int
    analysed: int = 0
    reused: int = 0
    written: int = 0
    exhausted: int = 0
    busy: int = 0
    faces: int = 0
    isolated: bool = False
    seconds: float = 0.0
    analyse_seconds: float = 0.0  # of `seconds`, in the pipeline (the rest: database, bookkeeping)

    def add(self, analysed: int, reused: int, written: int, faces: int) -> None:
        self.analysed += analysed
        self.reused += reused
        self.written += written
        self.faces += faces

    def to_json(self) -> dict[str, float | int | bool]:
        return asdict(self)


def process_batch(
    message: BatchMessage,
    task_id: str | None = None,
    settings: Settings | None = None,
    analyzer_for: AnalyzerFor | None = None,
) -> BatchSummary:
    """Analyse a batch: all images in one classifier call, or one by one after a crash.

    `task_id` (the Celery task's id) owns the leases on the images it claims. A database
    error is raised for the task to retry, after the engine's connections are dropped:
    one opened while the database was read-only or away would fail for ever.
    `settings` and `analyzer_for` ((backend, job's detector) -> Analyzer) default to this worker process's
    (`worker.runtime`); tests pass their own to run a batch in process.
    """
    settings = settings or runtime.settings()
    sessions = make_session_factory(settings.database_url)
    with reconnect_on_database_error(f"job {message.job_id} batch {message.batch_no}", settings.database_url):
        return _process(message, task_id or message.task_id, settings, sessions, analyzer_for or runtime.analyzer)


@contextmanager
def reconnect_on_database_error(what: str, url: str | None = None) -> Iterator[None]:
    """On a database error, drop the engine's pooled connections, then let it propagate for
    the task to retry: a connection opened while the database was read-only or away would
    fail for ever (SQLite opens a file it cannot write read-only, and stays so)."""
    try:
        yield
    except DB_RETRY_ERRORS as exc:
        make_engine(url or runtime.settings().database_url).dispose()
        logger.warning("%s: database error, reconnecting before the retry: %s", what, str(exc).splitlines()[0][:300])
        raise


def _check_job(session: Session, message: BatchMessage) -> str | None:
    """Refuse a message whose job does not exist or was recorded with another backend;
    return the job's own detector (None: this worker's DETECTOR)."""
    row = session.execute(select(Job.backend, Job.detector).where(Job.id == message.job_id)).first()
    if row is None:
        raise MessageError(f"job {message.job_id} does not exist; batch {message.batch_no} refused")
    backend, detector = row
    if backend != message.backend:
        raise MessageError(
            f"job {message.job_id} uses backend {backend}, the message says "
            f"{message.backend}; batch {message.batch_no} refused"
        )
    return detector


def _process(
    message: BatchMessage, owner: str, settings: Settings, sessions: sessionmaker[Session], analyzer_for: AnalyzerFor
) -> BatchSummary:
    started = time.perf_counter()
    lease = settings.hard_time_limit + LEASE_MARGIN_S
    ids = [ref.image_id for ref in message.images]
    with sessions() as session:
        detector = _check_job(session, message)
        attempts = pending_attempts(session, ids, message.job_id)  # images of this job only
    summary = BatchSummary(message.job_id, message.batch_no, isolated=any(attempts.values()))
    groups = [[i] for i in attempts] if summary.isolated else [list(attempts)]
    for group in groups:
        with sessions() as session:
            claim = claim_attempt(session, group, settings.max_attempts, message.job_id, owner, lease)
        summary.exhausted += len(claim.exhausted)
        summary.busy += len(claim.busy)
        if claim.live:
            _analyse_guarded(message, claim, summary, sessions, lambda: analyzer_for(message.backend, detector))
    summary.seconds = round(time.perf_counter() - started, 3)
    logger.info("job %s batch %s: %s", message.job_id, message.batch_no, summary)
    return summary


def _analyse_guarded(
    message: BatchMessage,
    claim: Claim,
    summary: BatchSummary,
    sessions: sessionmaker[Session],
    analyzer: Callable[[], Analyzer],
) -> None:
    """Analyse claimed images; an unexpected error is recorded against them, never lost
    (the pipeline fails an image that cannot be analysed alone: this is for the rest)."""
    try:
        _analyse_claimed(message, claim, summary, sessions, analyzer())
    except (*DB_RETRY_ERRORS, SoftTimeLimitExceeded):
        raise  # database busy or away / out of time: the task is retried (worker.tasks)
    except Exception as exc:  # noqa: BLE001
        logger.exception("job %s batch %s failed", message.job_id, message.batch_no)
        reason = f"batch error {type(exc).__name__}: {exc}"[:500]
        with sessions() as session:
            summary.written += fail_images(session, list(claim.live), reason)


def _analyse_claimed(
    message: BatchMessage,
    claim: Claim,
    summary: BatchSummary,
    sessions: sessionmaker[Session],
    analyzer: Analyzer,
) -> None:
    """Read each file once; reuse an earlier result only for the content actually read,
    analyse the rest, and store everything under the hash of what was read."""
    key = ResultKey(message.backend, analyzer.classifier.model_version, analyzer.detector_version)
    submitted = {i: sha for i, (_, sha) in claim.live.items()}
    with sessions() as session:
        earlier = {} if message.force else reusable(session, list(submitted.values()), key)
        earlier_results = {sha: as_result(image) for sha, image in earlier.items()}
    ids = list(claim.live)
    results: dict[int, ImageResult] = {}
    reused: dict[int, Image] = {}
    started = time.perf_counter()
    analysed = analyzer.analyze([claim.live[i][0] for i in ids], known=earlier.keys())
    summary.analyse_seconds = round(summary.analyse_seconds + time.perf_counter() - started, 3)
    for image_id, result in zip(ids, analysed):
        if result.known and result.sha256 in earlier:
            reused[image_id] = earlier[result.sha256]
            result = replace(earlier_results[result.sha256], sha256=result.sha256)
        results[image_id] = result
    with sessions() as session:
        written = store_results(session, results, key, reused, submitted)
    summary.add(len(ids) - len(reused), len(reused), written, sum(len(r.faces) for r in results.values()))
