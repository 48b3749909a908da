"""Live jobs over HTTP: `POST /api/jobs/live` starts sampling a source in the background
(the same `run_live` as `producer live`), `DELETE /api/jobs/{id}/live` stops it (its last
partial segment is still analysed). Only local cameras and LIVE_SOURCES may be opened."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from emotion_batch.config import DetectorName
from emotion_batch.errors import NotLiveError
from emotion_batch.live import LiveOptions, shown
from producer.live import LiveJob, run_live
from producer.web.deps import Backend, Id, State, WebState, start_job
from producer.web.security import allowed_source

router = APIRouter(prefix="/api", tags=["live"])
log = logging.getLogger(__name__)


class LiveRequest(BaseModel):
    """A live source to sample into a new job."""

    source: str = Field(min_length=1, max_length=2000, description="A camera (0, /dev/video0) or a LIVE_SOURCES URL.")
    fps: float | None = Field(None, gt=0, le=120, description="Default: the VIDEO_FPS setting.")
    duration: float | None = Field(None, gt=0, description="Seconds; default: until stopped or the source ends.")
    name: str | None = Field(None, max_length=200)
    backend: Backend | None = None
    detector: DetectorName | None = None


def _start(web: WebState, request: LiveRequest, source: str) -> int:
    """Open the source and record its job (errors are the request's), then sample it in a
    thread of its own; returns the job id."""
    s = web.settings
    options = LiveOptions(request.fps or s.video_fps, s.video_segment_seconds, request.duration, s.live_reopen_seconds)
    job = LiveJob(request.backend or s.backend, s.batch_size, s.queue, s.live_root, False, request.detector)
    stop = threading.Event()
    sampled: list[int] = []

    def on_job(job_id: int, record: Callable[[int], None]) -> None:
        web.live_jobs[job_id] = stop
        sampled.append(job_id)
        record(job_id)

    def sample(record: Callable[[int], None]) -> None:
        name = request.name or shown(source)
        try:
            run = run_live(web.sessions, web.client, source, options, job, name, stop, lambda j: on_job(j, record))
            log.info("live job %s: %s", run.job_id, run.note)
        finally:
            for job_id in sampled:
                web.live_jobs.pop(job_id, None)

    def failed(job_id: int, _exc: BaseException) -> None:
        log.exception("live job %s stopped by an error", job_id)

    return start_job("web-live", sample, failed)


@router.post("/jobs/live", status_code=202, summary="Start a live job: sample a camera or an allowed stream")
def start_live(request: LiveRequest, web: State) -> JSONResponse:
    """Answers once the source is open and its job recorded (202, its id); 403 for a
    source neither a local camera nor in LIVE_SOURCES, 400 for one that cannot be opened."""
    source = allowed_source(request.source, web.settings.live_sources)
    job_id = _start(web, request, source)
    links = {"status": f"/api/jobs/{job_id}", "page": f"/jobs/{job_id}", "stop": f"/api/jobs/{job_id}/live"}
    return JSONResponse(
        {"job": job_id, "live": True, "links": links}, status_code=202, headers={"Location": links["status"]}
    )


@router.delete("/jobs/{job_id}/live", summary="Stop a live job (its last frames are still analysed)")
def stop_live(job_id: Id, web: State) -> dict:
    stop = web.live_jobs.get(job_id)
    if stop is None:
        web.job(job_id)  # 404 for no such job
        raise NotLiveError(f"job {job_id} is not sampling a live source on this service")
    stop.set()
    return {"job": job_id, "stopping": True}
