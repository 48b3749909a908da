"""The JSON API of a job's results: the report (`producer report`), its faces, one image
with its faces drawn, one face cropped, the charts. Thin adapters over `job_report`
(+ `render.report_json/csv`, `write_parquet`, `html_for`), the face reads in
db/faces.py and the drawing in producer.annotate."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from db.faces import face_page, image_faces, job_face
from db.reports import GroupBy, job_report
from emotion_batch.config import Settings
from emotion_batch.errors import ForbiddenPathError, PathNotAllowedError
from emotion_batch.paths import from_db
from emotion_batch.pipeline import check_allowed
from producer import render
from producer.web.deps import Emotion, Id, Offset, State, WebState, cached
from producer.web.headers import photo_cache_control

router = APIRouter(prefix="/api", tags=["jobs"])
JPEG_QUALITY = 88


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
    web.job(job_id)
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

    web.job(job_id)
    with web.sessions() as session:
        png = cached(web, session, job_id, "charts", lambda: charts_for(session, job_id))[f"{name}.png"]
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache"})
