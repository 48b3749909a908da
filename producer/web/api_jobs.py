"""The JSON API of jobs: create (from server paths or uploads), list, status, live
progress, resume, retry. Every route is a thin adapter over the functions the CLI calls
(`submit`, `resume_job`, `retry_failed`, `job_progress`); reports and faces are
producer.web.api_results."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from db.jobs import failed_images, list_jobs, record_scan_error
from emotion_batch.config import DetectorName
from emotion_batch.errors import PathNotFoundError
from emotion_batch.messages import BATCH_SIZE_MAX, BATCH_SIZE_MIN
from producer.resume import resume_job, retry_failed
from producer.submit import SubmitOptions, SubmitResult, submit
from producer.web.deps import Backend, Id, Offset, State, WebState, job_state, start_job
from producer.web.security import allowed_path
from producer.web.uploads import Limits, Upload, store_upload

router = APIRouter(prefix="/api", tags=["jobs"])
log = logging.getLogger(__name__)


class PathJob(BaseModel):
    """A job over folders or files the server (and the workers) can read."""

    paths: list[str] = Field(min_length=1, max_length=100, description="Absolute paths under ALLOWED_ROOTS.")
    backend: Backend | None = Field(None, description="Default: the BACKEND setting.")
    batch_size: int | None = Field(None, ge=BATCH_SIZE_MIN, le=BATCH_SIZE_MAX)
    name: str | None = Field(None, max_length=200)
    force: bool = False
    detector: DetectorName | None = Field(None, description="Default: the workers' DETECTOR; skip: face crops.")


def _submitted(result: SubmitResult) -> JSONResponse:
    body = {
        "job": result.job_id,
        "found": result.found,
        "queued": result.queued,
        "duplicates": result.duplicates,
        "failed_at_scan": result.failed_at_scan,
        "batches": result.batches,
        "missing": result.problems.missing,
        "unreadable_dirs": result.problems.unreadable_dirs,
        "links": {"status": f"/api/jobs/{result.job_id}", "page": f"/jobs/{result.job_id}"},
    }
    return JSONResponse(body, status_code=201, headers={"Location": f"/api/jobs/{result.job_id}"})


def _submit(
    web: WebState, paths: list[Path], on_job: Callable[[int], None], name: str | None, **choices: Any
) -> SubmitResult:
    """Submit `paths` as the CLI does, the request's `choices` (backend, batch_size, force,
    detector) over the settings."""
    options = SubmitOptions.from_settings(web.settings, paths, name=name, **choices)
    return submit(web.sessions, web.client, paths, options, on_job=on_job)


def _record_scan_failure(web: WebState, job_id: int, exc: BaseException) -> None:
    """Say on the job why its background scan stopped (the status and job page show it)."""
    reason = f"scan stopped: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
    try:
        with web.sessions() as session:
            record_scan_error(session, job_id, f"{reason}; resume the job to finish it")
    except Exception:  # noqa: BLE001 (the database itself may be what failed: the log has both)
        log.exception("job %s: could not record why its scan stopped", job_id)


@router.post("/jobs", status_code=202, summary="Create a job from server paths under the allowed roots")
def create_job_from_paths(job: PathJob, web: State) -> JSONResponse:
    """Answers as soon as the job is recorded (202, its id); the scan goes on in the
    background, queueing batches as it goes, and the job's status says `complete` only
    once the scan has finished too. An interrupted scan is finished by resume."""
    roots = [*web.settings.allowed_roots, web.settings.upload_root.absolute()]
    paths = [allowed_path(raw, roots) for raw in job.paths]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise PathNotFoundError(missing)  # as `producer submit`: nothing scanned, queued or recorded
    choices = job.model_dump(exclude={"paths", "name"})

    def scan(record: Callable[[int], None]) -> None:
        result = _submit(web, paths, record, job.name, **choices)
        log.info("job %s: %s images queued, %s duplicates", result.job_id, result.queued, result.duplicates)

    def failed(job_id: int, exc: BaseException) -> None:
        log.exception("scan of a submitted job failed (producer resume finishes it)")
        _record_scan_failure(web, job_id, exc)

    job_id = start_job("web-submit", scan, failed)
    links = {"status": f"/api/jobs/{job_id}", "page": f"/jobs/{job_id}"}
    return JSONResponse(
        {"job": job_id, "scanning": True, "links": links}, status_code=202, headers={"Location": links["status"]}
    )


@router.post("/jobs/upload", status_code=201, summary="Create a job from uploaded images or one zip of images")
def create_job_from_upload(
    web: State,
    files: Annotated[list[UploadFile], File(description="Image files, or one zip of images.")],
    backend: Annotated[Backend | None, Form()] = None,
    batch_size: Annotated[int | None, Form(ge=BATCH_SIZE_MIN, le=BATCH_SIZE_MAX)] = None,
    name: Annotated[str | None, Form(max_length=200)] = None,
    force: Annotated[bool, Form()] = False,
    detector: Annotated[DetectorName | None, Form()] = None,
) -> JSONResponse:
    import shutil

    s = web.settings
    limits = Limits(s.max_upload_files, s.max_file_bytes, s.max_zip_bytes)
    folder = store_upload([Upload(f.filename or "image", f.file) for f in files], s.upload_root, limits)
    label = name or (files[0].filename if len(files) == 1 else f"{len(files)} uploaded images")
    recorded: list[int] = []
    try:
        choices = {"backend": backend, "batch_size": batch_size, "force": force, "detector": detector}
        return _submitted(_submit(web, [folder], recorded.append, label, **choices))
    except BaseException as exc:
        if not recorded:
            shutil.rmtree(folder, ignore_errors=True)  # nothing recorded, nothing kept
            raise
        # The job is recorded (some of its images perhaps queued already): its files stay
        # with it, never one without the other, and resume finishes it.
        if not isinstance(exc, Exception):
            raise
        log.exception("upload job %s recorded but not fully registered and queued", recorded[0])
        return _not_queued(recorded[0])


def _not_queued(job_id: int) -> JSONResponse:
    """503 for an upload whose job is recorded but could not be fully queued."""
    message = (
        f"job {job_id} is recorded with the uploaded files, but not all of them could be queued "
        f"(broker or database failing); resume it once they are back: POST /api/jobs/{job_id}/resume"
    )
    links = {"status": f"/api/jobs/{job_id}", "page": f"/jobs/{job_id}", "resume": f"/api/jobs/{job_id}/resume"}
    return JSONResponse({"error": message, "status": 503, "job": job_id, "links": links}, status_code=503)


@router.get("/jobs", summary="List jobs, newest first, with their counts")
def jobs(web: State, offset: Offset = 0, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict:
    with web.sessions() as session:
        total, page = list_jobs(session, offset, limit)
    return {"total": total, "offset": offset, "jobs": [{**j, "created_at": j["created_at"].isoformat()} for j in page]}


@router.get("/jobs/{job_id}", summary="A job's status: counts, images/s, ETA, first failures")
def status(job_id: Id, web: State) -> dict:
    job = web.job(job_id)
    with web.sessions() as session:
        body = job_state(session, job_id)
        body["failures"] = [{"path": p, "error": e} for p, e in failed_images(session, job_id, limit=20)]
    return {"name": job.name, "backend": job.backend, **body}


@router.get("/jobs/{job_id}/events", summary="Live progress as Server-Sent Events (ends when the job is finished)")
async def events(
    job_id: Id, request: Request, web: State, interval: Annotated[float, Query(ge=0.2, le=60)] = 1.0
) -> StreamingResponse:
    await run_in_threadpool(web.job, job_id)

    def read() -> dict:
        with web.sessions() as session:
            return job_state(session, job_id)

    async def stream():  # noqa: ANN202
        yield f"retry: {int(interval * 1000)}\n\n"
        while True:
            body = await run_in_threadpool(read)
            yield f"event: progress\ndata: {json.dumps(body)}\n\n"
            if body["complete"]:
                yield "event: done\ndata: {}\n\n"
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(interval)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


@router.post("/jobs/{job_id}/resume", summary="Re-enqueue the job's pending images (`producer resume`)")
def resume_route(job_id: Id, web: State) -> dict:
    resumed = resume_job(web.sessions, web.client, job_id, web.settings.queue, settings=web.settings)
    return {"job": job_id, "requeued": resumed.requeued, "batches": resumed.batches}


@router.post("/jobs/{job_id}/retry-failed", summary="Failed images back to pending, enqueued (`producer retry-failed`)")
def retry_route(job_id: Id, web: State) -> dict:
    web.job(job_id)
    count, batches = retry_failed(web.sessions, web.client, job_id, web.settings.queue, settings=web.settings)
    return {"job": job_id, "reset": count, "batches": batches}
