"""Server-rendered pages (Jinja2 + a little plain JavaScript): job list, job page with live
progress, face gallery, one photo with its boxes, the submit form and the login form.
Every figure comes from the same SQL reads as the API; tables and galleries are paged."""

from __future__ import annotations

import json
import os
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.orm import Session

from db.faces import face_page, image_faces
from db.jobs import failed_images, list_jobs
from db.reports import job_report
from emotion_batch.classify import BACKENDS
from emotion_batch.labels import EMOTIONS
from producer.charts import COLOURS
from producer.web.deps import MAX_ROW, Emotion, Id, State, cached, job_state, with_videos
from producer.web.security import COOKIE, token_matches

router = APIRouter(include_in_schema=False)
JOBS_PER_PAGE = 25
FACES_PER_PAGE = 48
FAILURES_SHOWN = 20
GROUP_ROWS = 100  # rows per folder/date table on the page; the CSV has them all


def _page(request: Request, template: str, **context) -> HTMLResponse:
    context.update(emotions=EMOTIONS, colours=COLOURS, token_set=bool(request.app.state.web.settings.web_token))
    return request.app.state.templates.TemplateResponse(request, template, context)


def _short(groups: dict[str, dict]) -> list[tuple[str, str, dict]]:
    """(full name, short name, figures) per group, folders relative to their common parent."""
    names = list(groups)
    paths = [n for n in names if n.startswith("/")]
    common = os.path.commonpath(paths) if len(paths) > 1 else (os.path.dirname(paths[0]) if paths else "")
    return [(n, os.path.relpath(n, common) if n in paths and common else n, groups[n]) for n in names]


@router.get("/", response_class=HTMLResponse)
def job_list(
    request: Request, web: State, page: Annotated[int, Query(ge=1, le=MAX_ROW // JOBS_PER_PAGE)] = 1
) -> HTMLResponse:
    with web.sessions() as session:
        total, jobs = list_jobs(session, (page - 1) * JOBS_PER_PAGE, JOBS_PER_PAGE)
        empty = _empty_jobs(session, jobs)
    pages = max(1, -(-total // JOBS_PER_PAGE))
    return _page(request, "jobs.html", jobs=jobs, total=total, page=page, pages=pages, empty=empty)


def _empty_jobs(session: Session, jobs: list[dict]) -> set[int]:
    """Ids of the listed jobs whose finished scan found no image and no video."""
    candidates = [j["id"] for j in jobs if j["scan_complete"] and not j["images"]]
    return set(candidates) - with_videos(session, candidates)


@router.get("/jobs/new", response_class=HTMLResponse)
def new_job(request: Request, web: State) -> HTMLResponse:
    s = web.settings
    return _page(
        request,
        "submit.html",
        backends=list(BACKENDS),
        roots=[str(r) for r in s.allowed_roots],
        backend=s.backend,
        batch_size=s.batch_size,
        max_upload_mb=s.max_upload_bytes // 1_000_000,
    )


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: Id, web: State) -> HTMLResponse:
    job = web.job(job_id)
    with web.sessions() as session:
        progress = job_state(session, job_id)
        report = dict(
            cached(
                web,
                session,
                job_id,
                ("report", "folder", "date"),
                lambda: job_report(session, job_id, by=("folder", "date")),
            )
        )
        failures = failed_images(session, job_id, limit=FAILURES_SHOWN)
    dates = report.pop("dates")
    folders = _short(report.pop("folders"))
    return _page(
        request,
        "job.html",
        job=job,
        roots=json.loads(job.roots),
        progress=progress,
        stoppable=job_id in web.live_jobs,  # sampled by this service: it can stop it
        report=report,
        failures=failures,
        folders=folders[:GROUP_ROWS],
        folder_count=len(folders),
        dates=[(n, n, g) for n, g in list(dates.items())[:GROUP_ROWS]],
        date_count=len(dates),
        group_rows=GROUP_ROWS,
    )


@router.get("/jobs/{job_id}/faces", response_class=HTMLResponse)
def gallery(
    request: Request,
    job_id: Id,
    web: State,
    emotion: Annotated[Emotion | Literal[""] | None, Query()] = None,
    min_percent: Annotated[float, Query(ge=0, le=100)] = 0.0,
    page: Annotated[int, Query(ge=1, le=MAX_ROW // FACES_PER_PAGE)] = 1,
) -> HTMLResponse:
    job = web.job(job_id)
    with web.sessions() as session:
        found = face_page(session, job_id, emotion or None, min_percent, (page - 1) * FACES_PER_PAGE, FACES_PER_PAGE)
    pages = max(1, -(-found.total // FACES_PER_PAGE))

    def link(p: int) -> str:
        return f"?{urlencode({'emotion': emotion or '', 'min_percent': min_percent, 'page': p})}"

    return _page(
        request,
        "gallery.html",
        job=job,
        faces=found.faces,
        total=found.total,
        emotion=emotion or "",
        min_percent=min_percent,
        page=page,
        pages=pages,
        link=link,
    )


@router.get("/jobs/{job_id}/images/{image_id}", response_class=HTMLResponse)
def photo(request: Request, job_id: Id, image_id: Id, web: State) -> HTMLResponse:
    job = web.job(job_id)
    with web.sessions() as session:
        found = image_faces(session, job_id, image_id)
        if found is None:
            raise LookupError(f"no image {image_id} in job {job_id}")
        image, faces = found
        session.expunge(image)
    return _page(request, "photo.html", job=job, image=image, faces=faces, name=os.path.basename(image.path))


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> HTMLResponse:  # noqa: A002
    return _page(
        request, "login.html", next=next if next.startswith("/") and not next.startswith("//") else "/", wrong=False
    )


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, web: State, token: Annotated[str, Form()], next: Annotated[str, Form()] = "/"):  # noqa: A002, ANN201
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    expected = web.settings.web_token.get_secret_value() if web.settings.web_token else None
    if expected and not token_matches(expected, token):
        response = _page(request, "login.html", next=target, wrong=True)
        response.status_code = 401
        return response
    redirect = RedirectResponse(target, status_code=303)
    redirect.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return redirect


@router.get("/healthz", include_in_schema=True, tags=["service"])
def healthz(web: State) -> dict:
    """Liveness and database reachability (no token needed; says nothing about jobs)."""
    from sqlalchemy import text

    with web.sessions() as session:
        session.execute(text("SELECT 1"))
    return {"ok": True}
