"""What the routes share (the API's, the pages', the live ones'): the service's state,
the request dependencies and path types, a job's status as JSON, and starting a job's
work in the background. The app (producer.web.app) imports the routes; the routes
import this, never the app."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Depends, Query, Request
from fastapi import Path as PathParam
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.jobs import job_progress
from db.live import is_live
from db.video_schema import Video
from db.videos import pending_segment_count
from emotion_batch.classify import BACKENDS
from emotion_batch.config import Settings
from emotion_batch.labels import EMOTIONS
from producer.context import AppContext
from producer.web.uploads import remove_partial_uploads

log = logging.getLogger(__name__)
if TYPE_CHECKING:  # the choices exist at run time only (FastAPI validates against them)
    Backend = str
    Emotion = str
else:
    Backend = Literal[tuple(BACKENDS)]  # the one backend registry
    Emotion = Literal[tuple(EMOTIONS)]
MAX_ROW = 2**63 - 1  # the largest id or offset a database integer holds (SQLite and PostgreSQL BIGINT)
Id = Annotated[int, PathParam(ge=1, le=MAX_ROW, description="A row id.")]
Offset = Annotated[int, Query(ge=0, le=MAX_ROW)]


class JobCache:
    """Reports and charts of jobs, each kept while its job's counts and last result time
    stay the same (a finished job's never change): a 100,000-image job's aggregates and
    charts are computed once, not on every page view."""

    def __init__(self, size: int = 32) -> None:
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


class WebState(AppContext):
    """What every request uses: the application context (settings, sessions, the Celery
    client, producer.context), the report cache and the live jobs this service samples."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.cache = JobCache()
        # live jobs this service is sampling, each with the event that stops it (producer.web.live)
        self.live_jobs: dict[int, threading.Event] = {}
        self.sessions  # noqa: B018 - the schema is brought up to date when the service starts
        for folder in remove_partial_uploads(settings.upload_root.absolute()):
            log.warning("removed %s: an upload a stopped server left half-written", folder)


def state(request: Request) -> WebState:
    return request.app.state.web


State = Annotated[WebState, Depends(state)]


def cached(web: WebState, session: Session, job_id: int, what: Hashable, make: Callable[[], Any]) -> Any:
    """`make()` (a report or charts of the job), reused while the job has not changed."""
    p = job_progress(session, job_id)
    version = (p.total, p.pending, p.done, p.failed, p.faces, p.scan_complete, p.last_processed)
    return web.cache.get((job_id, what, version), make)


def with_videos(session: Session, job_ids: list[int]) -> set[int]:
    """Which of `job_ids` hold a video: a job without image is empty only without one too."""
    return set(session.scalars(select(Video.job_id).where(Video.job_id.in_(job_ids)).distinct()))


def job_state(session: Session, job_id: int) -> dict[str, Any]:
    """A job's status as JSON: counts, images/s and ETA (the CLI's `status` figures); it
    is complete, as for `submit --wait`, when no image and no video segment is pending,
    and `empty` (not finished: nothing was analysed) when its scan found no image or video;
    `live` while a source of it is being sampled (docs/live.md)."""
    p = job_progress(session, job_id)
    segments = pending_segment_count(session, job_id)
    empty = p.complete and not p.total and not with_videos(session, [job_id])
    live = is_live(session, job_id)
    return {
        "job": p.job_id,
        "total": p.total,
        "finished": p.finished,
        "pending": p.pending,
        "done": p.done,
        "no_face": p.no_face,
        "failed": p.failed,
        "faces": p.faces,
        "pending_video_segments": segments,
        "scanning": not p.scan_complete and p.scan_error is None and not live,
        "live": live,
        "scan_error": p.scan_error,
        "complete": p.complete and not segments,
        "empty": empty,
        "percent": round(100.0 * p.finished / p.total, 1) if p.total else (0.0 if empty else 100.0),
        "images_per_second": round(p.rate, 2),
        "eta_seconds": None if p.eta_seconds is None else round(p.eta_seconds, 1),
        "started": p.started.isoformat() if p.started else None,
        "last_processed": p.last_processed.isoformat() if p.last_processed else None,
    }


def start_job(
    name: str,
    work: Callable[[Callable[[int], None]], object],
    failed: Callable[[int, BaseException], None],
) -> int:
    """Run `work(record)` in a thread of its own and return the job id it records (with
    `record(job_id)`) as soon as it does: the request answers then, the work goes on. An
    error before that is the request's, raised here; one after goes to `failed(job_id,
    error)`. A daemon thread per job, not a pool: a job's work outlives its request by
    hours, a pool would make a new job wait for a free thread, and a stopping server
    must not wait for a scan (resume finishes it)."""
    recorded: Future[int] = Future()

    def run() -> None:
        try:
            work(recorded.set_result)
        except BaseException as exc:
            if recorded.done():
                failed(recorded.result(), exc)
            else:
                recorded.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return recorded.result()
