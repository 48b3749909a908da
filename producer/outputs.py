"""Gathering what the picture outputs need from the database: charts, the HTML page's
parts and the images to annotate. Rendering lives in charts, html_report, annotate."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from db.faces import faces_per_image, top_faces
from db.reports import job_report
from emotion_batch.config import Settings
from producer.annotate import annotate_images
from producer.charts import job_charts
from producer.html_report import HtmlParts, render_html
from producer.thumbnails import face_thumbnails
from producer.video_outputs import video_charts, video_html


def full_report(session: Session, job_id: int) -> dict:
    """The job report with `folders`, `dates` (each aggregated once) and `videos`."""
    return job_report(session, job_id, by=("folder", "date", "video"))


def charts_for(session: Session, job_id: int) -> dict[str, bytes]:
    """The job's PNG charts by file name."""
    report = full_report(session, job_id)
    return job_charts(report, report) | video_charts(report)


def html_for(session: Session, job_id: int, settings: Settings, per_emotion: int = 6) -> str:
    """The self-contained HTML report of the job."""
    report = full_report(session, job_id)
    faces = top_faces(session, job_id, per_emotion)
    thumbnails = face_thumbnails(faces, settings.max_pixels, settings.max_file_bytes, settings.readable_roots)
    videos = video_html(report, video_charts(report))
    return render_html(HtmlParts(report, job_charts(report, report), thumbnails, videos))


def annotate_job(
    session: Session, job_id: int, out_dir: Path, settings: Settings, limit: int | None = None
) -> tuple[list[Path], list[str]]:
    """Annotated copies of the job's images with faces; (written, unreadable paths)."""
    images = faces_per_image(session, job_id, limit)
    return annotate_images(images, out_dir, settings.max_pixels, settings.max_file_bytes)
