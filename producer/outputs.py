"""Gathering what the picture outputs need from the database: charts, the HTML page's
parts and the images to annotate. Rendering lives in charts, html_report, annotate."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from sqlalchemy.orm import Session

from db.faces import faces_per_image, top_faces
from db.jobs import failed_images
from db.reports import job_report, summarise
from emotion_batch.config import Settings
from producer.annotate import annotate_images
from producer.charts import job_charts, one_day
from producer.html_report import FAILURES_SHOWN, HtmlParts, render_html
from producer.thumbnails import face_thumbnails
from producer.video_outputs import video_charts, video_html


def full_report(session: Session, job_id: int) -> dict:
    """The job report with `folders`, `dates` (each aggregated once) and `videos`."""
    return job_report(session, job_id, by=("folder", "date", "video"))


def hours_for(session: Session, job_id: int, report: dict) -> dict[str, dict] | None:
    """The job's groups per hour when its dated faces lie on one day (else None: the
    timeline's days, weeks or months are in the report)."""
    if not one_day(report["dates"]):
        return None
    return {hour: asdict(summary) for hour, summary in summarise(session, job_id, "hour").items()}


def charts_for(session: Session, job_id: int) -> dict[str, bytes]:
    """The job's PNG charts by file name."""
    report = full_report(session, job_id)
    return job_charts(report, report, hours_for(session, job_id, report)) | video_charts(report)


def html_for(session: Session, job_id: int, settings: Settings, per_emotion: int = 6) -> str:
    """The self-contained HTML report of the job."""
    report = full_report(session, job_id)
    faces = top_faces(session, job_id, per_emotion)
    thumbnails = face_thumbnails(faces, settings.max_pixels, settings.max_file_bytes, settings.readable_roots)
    videos = video_html(report, video_charts(report))
    failures = tuple(failed_images(session, job_id, FAILURES_SHOWN))
    charts = job_charts(report, report, hours_for(session, job_id, report))
    return render_html(HtmlParts(report, charts, thumbnails, videos, failures))


def annotate_job(
    session: Session, job_id: int, out_dir: Path, settings: Settings, limit: int | None = None
) -> tuple[list[Path], list[str]]:
    """Annotated copies of the job's images with faces; (written, unreadable paths)."""
    images = faces_per_image(session, job_id, limit)
    return annotate_images(images, out_dir, settings.max_pixels, settings.max_file_bytes, settings.readable_roots)
