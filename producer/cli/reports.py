"""Read-only commands that turn a job's results into reports, charts and annotated copies.

They never create or migrate the database; they only write the files they are asked for."""

from __future__ import annotations

from pathlib import Path

import click

from db.reports import job_report
from producer.cli.context import CliContext, console, existing_job, out, shared_options
from producer.cli.output import FORMATS, emit_report, emit_text, writing


@click.command()
@click.argument("job", type=int, required=False)
@click.option(
    "--by",
    type=click.Choice(["job", "folder", "date", "video"]),
    default="job",
    help="Group by folder, or by date (EXIF capture date, else file date); video: one "
    "row per video with its strongest moments (json adds each video's emotion over time).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    help="html: one self-contained page with charts and faces (grouped by folder and date).",
)
@click.option("--out", "out_file", type=click.Path(path_type=Path), help="Write to this file.")
@click.option("--faces-per-emotion", type=int, default=6, show_default=True, help="html: thumbnails per emotion.")
@shared_options
def report(c: CliContext, job: int | None, by: str, fmt: str, out_file: Path | None, faces_per_emotion: int) -> None:
    """Aggregate emotion report of JOB (default: the latest job)."""
    if fmt == "parquet" and out_file is None:
        raise click.UsageError("--format parquet needs --out FILE")
    with c.read_sessions() as session:
        job = existing_job(session, job)
        if fmt == "html":
            from producer.outputs import html_for

            emit_text(html_for(session, job, c.settings, faces_per_emotion), out_file)
            return
        data = job_report(session, job, by=by)  # type: ignore[arg-type]
    emit_report(data, fmt, out_file)


@click.command()
@click.argument("job", type=int, required=False)
@click.option(
    "--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Folder for the PNG files (created)."
)
@shared_options
def chart(c: CliContext, job: int | None, out_dir: Path) -> None:
    """PNG charts of JOB: emotions per folder and share over time."""
    from producer.charts import write_charts
    from producer.outputs import charts_for

    with c.read_sessions() as session:
        charts = charts_for(session, existing_job(session, job))
    with writing(out_dir):
        paths = write_charts(charts, out_dir)
    for path in paths:
        out.print(str(path))


@click.command()
@click.argument("job", type=int, required=False)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder for the copies (created; the originals are never changed).",
)
@click.option("--limit", type=int, default=None, help="At most this many images.")
@shared_options
def annotate(c: CliContext, job: int | None, out_dir: Path, limit: int | None) -> None:
    """Annotated copies of JOB's images with faces: boxes, dominant emotion and percent."""
    from producer.outputs import annotate_job

    with c.read_sessions() as session:
        written, unreadable = annotate_job(session, existing_job(session, job), out_dir, c.settings, limit)
    for path in unreadable:
        console.print(f"[yellow]cannot read {path} any more; skipped")
    console.print(f"wrote {len(written)} annotated images to {out_dir}/")
