"""The JSON API. Every route is a thin adapter over the functions the CLI calls: `submit`,
`resume`, `retry_failed`, `job_progress`, `job_report` (+ `render.report_json/csv`,
`report_frame`, `html_for`), the face reads in db/faces.py and the drawing in annotate."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from db.faces import face_page, image_faces, job_face
from db.jobs import failed_images, job_progress, list_jobs, record_scan_error
from db.live import is_live
from db.reports import GroupBy, job_report
from db.schema import Job
from db.video_schema import Video
from db.videos import pending_segment_count
from emotion_batch.classify import BACKENDS
from emotion_batch.config import DetectorName, Settings
from emotion_batch.errors import ForbiddenPathError, JobNotFoundError, PathNotAllowedError, PathNotFoundError
from emotion_batch.labels import EMOTIONS
from emotion_batch.paths import from_db
from emotion_batch.pipeline import check_allowed
from producer import render
from producer.submit import SubmitResult, resume_job, retry_failed, submit
from producer.videos import VideoOptions
from producer.web.app import WebState
from producer.web.headers import photo_cache_control
from producer.web.security import allowed_path
from producer.web.uploads import Limits, Upload, store_upload

router = APIRouter(prefix="/api", tags=["jobs"])
log = logging.getLogger(__name__)
if TYPE_CHECKING:  # the choices exist at run time only (FastAPI validates against them)
    Backend = str
    Emotion = str
else:
    Backend = Literal[tuple(BACKENDS)]  # the one backend registry
    Emotion = Literal[tuple(EMOTIONS)]
JPEG_QUALITY = 88
MAX_ROW = 2**63 - 1  # the largest id or offset a database integer holds (SQLite and PostgreSQL BIGINT)
Id = Annotated[int, PathParam(ge=1, le=MAX_ROW, description="A row id.")]
Offset = Annotated[int, Query(ge=0, le=MAX_ROW)]


def state(request: Request) -> WebState:
    return request.app.state.web


State = Annotated[WebState, Depends(state)]


class PathJob(BaseModel):
    """A job over folders or files the server (and the workers) can read."""

    paths: list[str] = Field(min_length=1, max_length=100, description="Absolute paths under ALLOWED_ROOTS.")
    backend: Backend | None = Field(None, description="Default: the BACKEND setting.")
    batch_size: int | None = Field(None, ge=1, le=1024)
    name: str | None = Field(None, max_length=200)
    force: bool = False
    detector: DetectorName | None = Field(None, description="Default: the workers' DETECTOR; skip: face crops.")


def require_job(web: WebState, job_id: int) -> Job:
    with web.sessions() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise JobNotFoundError(job_id)
        session.expunge(job)
        return job


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
    web: WebState,
    paths: list[Path],
    backend: str | None,
    batch_size: int | None,
    name: str | None,
    force: bool,
    on_job: Callable[[int], None] | None = None,
    detector: str | None = None,
) -> SubmitResult:
    s = web.settings
    return submit(
        web.sessions,
        web.client,
        paths,
        backend=backend or s.backend,
        batch_size=batch_size or s.batch_size,
        name=name or str(paths[0]),
        force=force,
        queue=s.queue,
        settings=s,
        video=VideoOptions.from_settings(s),
        on_job=on_job,
        detector=detector,
    )


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
    recorded: Future[int] = Future()

    def scan() -> None:
        try:
            result = _submit(
                web, paths, job.backend, job.batch_size, job.name, job.force, recorded.set_result, job.detector
            )
            log.info("job %s: %s images queued, %s duplicates", result.job_id, result.queued, result.duplicates)
        except BaseException as exc:
            if recorded.done():
                log.exception("scan of a submitted job failed (producer resume finishes it)")
                _record_scan_failure(web, recorded.result(), exc)
            else:
                recorded.set_exception(exc)  # before the job was recorded: the request's error

    threading.Thread(target=scan, name="web-submit", daemon=True).start()
    job_id = recorded.result()
    links = {"status": f"/api/jobs/{job_id}", "page": f"/jobs/{job_id}"}
    return JSONResponse(
        {"job": job_id, "scanning": True, "links": links}, status_code=202, headers={"Location": links["status"]}
    )


@router.post("/jobs/upload", status_code=201, summary="Create a job from uploaded images or one zip of images")
def create_job_from_upload(
    web: State,
    files: Annotated[list[UploadFile], File(description="Image files, or one zip of images.")],
    backend: Annotated[Backend | None, Form()] = None,
    batch_size: Annotated[int | None, Form(ge=1, le=1024)] = None,
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
        return _submitted(_submit(web, [folder], backend, batch_size, label, force, recorded.append, detector))
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
    job = require_job(web, job_id)
    with web.sessions() as session:
        body = job_state(session, job_id)
        body["failures"] = [{"path": p, "error": e} for p, e in failed_images(session, job_id, limit=20)]
    return {"name": job.name, "backend": job.backend, **body}


@router.get("/jobs/{job_id}/events", summary="Live progress as Server-Sent Events (ends when the job is finished)")
async def events(
    job_id: Id, request: Request, web: State, interval: Annotated[float, Query(ge=0.2, le=60)] = 1.0
) -> StreamingResponse:
    await run_in_threadpool(require_job, web, job_id)

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


@router.get("/jobs/{job_id}/report", summary="The report: `producer report --format json|csv|parquet|html`")
def report(
    job_id: Id,
    web: State,
    by: GroupBy = "job",
    format: Literal["json", "csv", "parquet", "html"] = "json",  # noqa: A002 (the CLI's option name)
    faces_per_emotion: Annotated[int, Query(ge=0, le=50)] = 6,
) -> Response:
    with web.sessions() as session:
        if format == "html":
            from producer.outputs import html_for

            return Response(html_for(session, job_id, web.settings, faces_per_emotion), media_type="text/html")
        data = cached(web, session, job_id, ("report", by), lambda: job_report(session, job_id, by=by))
    if format == "json":
        return Response(render.report_json(data), media_type="application/json")
    filename = f"job{job_id}-{by}"
    if format == "csv":
        return Response(
            render.report_csv(data),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
        )
    from producer.report_files import write_parquet

    buffer = io.BytesIO()
    write_parquet(data, buffer)
    return Response(
        buffer.getvalue(),
        media_type="application/vnd.apache.parquet",
        headers={"Content-Disposition": f'attachment; filename="{filename}.parquet"'},
    )


@router.get("/jobs/{job_id}/faces", summary="A job's faces, most certain first, filtered and paged")
def faces(
    job_id: Id,
    web: State,
    emotion: Emotion | None = None,
    min_percent: Annotated[float, Query(ge=0, le=100)] = 0.0,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 48,
) -> dict:
    require_job(web, job_id)
    with web.sessions() as session:
        page = face_page(session, job_id, emotion, min_percent, offset, limit)
    for face in page.faces:
        face["links"] = {
            "thumbnail": f"/api/jobs/{job_id}/faces/{face['id']}/thumbnail.jpg",
            "annotated": f"/api/jobs/{job_id}/images/{face['image_id']}/annotated.jpg",
        }
    return {"total": page.total, "offset": offset, "limit": limit, "faces": page.faces}


def _jpeg(image, settings: Settings) -> Response:  # noqa: ANN001 (PIL image)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=JPEG_QUALITY)
    cache = photo_cache_control(settings.web_cache_photos)  # photos of people: no-store unless opted in
    return Response(buffer.getvalue(), media_type="image/jpeg", headers={"Cache-Control": cache})


def _picture(web: WebState, path: str):  # noqa: ANN202 (a PIL image)
    """The upright photo at `path` for drawing on; refused (403) when its real path, links
    followed now, leaves the roots the service may read (Settings.readable_roots)."""
    from producer.annotate import upright

    s, name, path = web.settings, Path(path).name, from_db(path)
    try:
        check_allowed(path, s.readable_roots)
    except PathNotAllowedError as exc:
        raise ForbiddenPathError(f"{name}: its real path is outside the allowed roots") from exc
    picture = upright(path, s.max_pixels, s.max_file_bytes, s.readable_roots)
    if picture is None:
        raise LookupError(f"{name} cannot be read any more")
    return picture


@router.get(
    "/jobs/{job_id}/images/{image_id}/annotated.jpg",
    summary="One image with its faces boxed and labelled",
    response_class=Response,
)
def annotated(job_id: Id, image_id: Id, web: State) -> Response:
    from producer.annotate import draw_faces

    with web.sessions() as session:
        found = image_faces(session, job_id, image_id)
    if found is None:
        raise LookupError(f"no image {image_id} in job {job_id}")
    image, rows = found
    return _jpeg(draw_faces(_picture(web, image.path), rows), web.settings)


@router.get("/jobs/{job_id}/faces/{face_id}/thumbnail.jpg", summary="One face, cropped", response_class=Response)
def thumbnail(job_id: Id, face_id: Id, web: State) -> Response:
    from producer.annotate import crop_face

    with web.sessions() as session:
        face = job_face(session, job_id, face_id)
    if face is None:
        raise LookupError(f"no face {face_id} in job {job_id}")
    return _jpeg(crop_face(_picture(web, face.path), face, size=160), web.settings)


@router.get(
    "/jobs/{job_id}/charts/{name}.png", summary="The job's PNG charts (as `producer chart`)", response_class=Response
)
def chart(job_id: Id, name: Literal["emotions-by-folder", "share-over-time"], web: State) -> Response:
    from producer.outputs import charts_for

    require_job(web, job_id)
    with web.sessions() as session:
        png = cached(web, session, job_id, "charts", lambda: charts_for(session, job_id))[f"{name}.png"]
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache"})


@router.post("/jobs/{job_id}/resume", summary="Re-enqueue the job's pending images (`producer resume`)")
def resume_route(job_id: Id, web: State) -> dict:
    resumed = resume_job(web.sessions, web.client, job_id, web.settings.queue, settings=web.settings)
    return {"job": job_id, "requeued": resumed.requeued, "batches": resumed.batches}


@router.post("/jobs/{job_id}/retry-failed", summary="Failed images back to pending, enqueued (`producer retry-failed`)")
def retry_route(job_id: Id, web: State) -> dict:
    require_job(web, job_id)
    count, batches = retry_failed(web.sessions, web.client, job_id, web.settings.queue, settings=web.settings)
    return {"job": job_id, "reset": count, "batches": batches}
