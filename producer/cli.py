"""`producer`: submit jobs, follow them, report, resume, and run the embedded demo."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from db.jobs import failed_images, job_progress, latest_job_id, reset_failed
from db.migrate import upgrade
from db.reports import job_report
from db.session import make_session_factory
from emotion_batch.broker import make_client
from emotion_batch.config import Settings
from emotion_batch.errors import EmotionBatchError
from producer import render
from producer.models_cmd import models
from producer.submit import resume, submit, wait_for_job

console = Console(stderr=True)
out = Console()
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"


class Context:
    """Settings plus lazily made database sessions and Celery client."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        upgrade(settings.database_url)
        self.sessions = make_session_factory(settings.database_url)

    def client(self):
        return make_client(self.settings, self.settings.redis_url or DEFAULT_BROKER)


class _Group(click.Group):
    """Our errors become one clear line and a non-zero exit, not a traceback."""

    def invoke(self, ctx: click.Context):  # noqa: ANN201
        try:
            return super().invoke(ctx)
        except EmotionBatchError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Group)
@click.option("--redis-url", envvar="REDIS_URL", help="Broker URL [env REDIS_URL].")
@click.option("--database-url", envvar="DATABASE_URL", help="SQLAlchemy URL [env DATABASE_URL].")
@click.pass_context
def main(ctx: click.Context, redis_url: str | None, database_url: str | None) -> None:
    """emotion-batch: read the emotions on every face in large photo collections."""
    overrides = {k: v for k, v in {"redis_url": redis_url, "database_url": database_url}.items() if v}
    ctx.obj = Settings(**overrides)


def _context(ctx: click.Context) -> Context:
    return Context(ctx.obj)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console)


@main.command("submit")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--backend", type=click.Choice(["cnn", "deepface"]), envvar="BACKEND", help="Classifier [env BACKEND, default cnn].")
@click.option("--batch-size", type=int, envvar="BATCH_SIZE", help="Images per batch [env BATCH_SIZE, default 32].")
@click.option("--name", help="Job name (default: the first path).")
@click.option("--force", is_flag=True, help="Re-analyse images already analysed with this model.")
@click.option("--wait", is_flag=True, help="Block with a progress bar until the job is finished.")
@click.option("--timeout", type=float, default=None, help="With --wait: give up after this many seconds.")
@click.pass_context
def submit_cmd(ctx, paths, backend, batch_size, name, force, wait, timeout) -> None:
    """Scan PATHS, register every image and enqueue batches on Redis."""
    c = _context(ctx)
    backend = backend or c.settings.backend
    batch_size = batch_size or c.settings.batch_size
    with _progress() as bar:
        scanning = bar.add_task("scan + hash", total=None)
        enqueueing = bar.add_task("enqueue", total=None, visible=False)

        def scanned(_file: object) -> None:
            bar.advance(scanning)
            bar.update(enqueueing, total=bar.tasks[scanning].completed)

        result = submit(
            c.sessions, c.client(), paths, backend=backend, batch_size=batch_size,
            name=name or str(paths[0]), force=force, queue=c.settings.queue,
            on_scan=scanned,
            on_batch=lambda n: bar.update(enqueueing, advance=n, visible=True),
        )
        bar.update(scanning, total=result.found, completed=result.found)
        bar.update(enqueueing, total=result.queued, completed=result.queued, visible=True)
    for folder in result.problems.unreadable_dirs:
        console.print(f"[yellow]unreadable folder: {folder}")
    for path in result.problems.missing:
        console.print(f"[yellow]not found: {path}")
    console.print(
        f"job [bold]{result.job_id}[/]: {result.queued} images queued in {result.batches} batches, "
        f"{result.duplicates} duplicates skipped, {result.failed_at_scan} unreadable\n"
        f"follow it: producer watch {result.job_id}   report: producer report {result.job_id}"
    )
    out.print(result.job_id)
    if wait:
        _watch(c, result.job_id, timeout)


def _watch(c: Context, job_id: int, timeout: float | None) -> None:
    with _progress() as bar:
        task = bar.add_task(f"job {job_id}", total=None)

        def show(p) -> None:
            bar.update(task, total=p.total, completed=p.finished,
                       description=f"job {job_id}: {p.faces} faces, {p.failed} failed, {p.rate:.1f} img/s")

        def stalled() -> None:
            batches = resume(c.sessions, c.client(), job_id, c.settings.queue)
            console.print(f"[yellow]job {job_id}: no progress for {c.settings.stall_seconds}s, "
                          f"re-enqueued {batches} batches of pending images")

        final = wait_for_job(c.sessions, job_id, timeout, show, on_stall=stalled,
                             stall_seconds=c.settings.stall_seconds)
    console.print(render.progress_line(final))
    if not final.complete:
        raise click.ClickException(f"job {job_id} not finished after {timeout}s")
    if final.total and final.failed == final.total:
        raise click.ClickException(f"job {job_id} could not run: all {final.total} images failed "
                                   f"(see `producer report {job_id}` and the worker log)")


@main.command()
@click.argument("job", type=int)
@click.pass_context
def status(ctx, job: int) -> None:
    """Done / failed / pending, faces, images per second and ETA of JOB."""
    c = _context(ctx)
    with c.sessions() as session:
        out.print(render.progress_line(job_progress(session, job)))
        _print_failures(session, job)


def _print_failures(session, job: int) -> None:
    for path, reason in failed_images(session, job, limit=20):
        out.print(f"  failed: {path}: {reason}", markup=False)


@main.command()
@click.argument("job", type=int)
@click.option("--timeout", type=float, default=None)
@click.pass_context
def watch(ctx, job: int, timeout: float | None) -> None:
    """Follow JOB live until it is finished."""
    _watch(_context(ctx), job, timeout)


def _job_or_latest(session, job: int | None) -> int:
    job = job or latest_job_id(session)
    if job is None:
        raise click.ClickException("no job in the database yet")
    return job


@main.command()
@click.argument("job", type=int, required=False)
@click.option("--by", type=click.Choice(["job", "folder", "date"]), default="job",
              help="Group by folder, or by date (EXIF capture date, else file date).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "parquet", "html"]), default="table",
              help="html: one self-contained page with charts and faces (grouped by folder and date).")
@click.option("--out", "out_file", type=click.Path(path_type=Path), help="Write to a file.")
@click.option("--faces-per-emotion", type=int, default=6, show_default=True, help="html: thumbnails per emotion.")
@click.pass_context
def report(ctx, job: int | None, by: str, fmt: str, out_file: Path | None, faces_per_emotion: int) -> None:
    """Aggregate emotion report of JOB (default: the latest job)."""
    if fmt == "parquet" and out_file is None:
        raise click.UsageError("--format parquet needs --out FILE")
    c = _context(ctx)
    with c.sessions() as session:
        job = _job_or_latest(session, job)
        if fmt == "html":
            from producer.outputs import html_for

            _emit_text(html_for(session, job, c.settings, faces_per_emotion), out_file)
            return
        data = job_report(session, job, by=by)
    _emit_report(data, fmt, out_file)


def _emit_text(text: str, out_file: Path | None) -> None:
    if out_file:
        out_file.write_text(text, encoding="utf-8")
        console.print(f"wrote {out_file}")
    else:
        click.echo(text)


def _emit_report(data: dict, fmt: str, out_file: Path | None) -> None:
    if fmt == "parquet":
        from producer.report_files import write_parquet

        write_parquet(data, out_file)
        return
    if fmt == "table" and out_file is None:
        render.report_table(data, out)
        return
    if fmt == "table":
        with open(out_file, "w") as handle:
            render.report_table(data, Console(file=handle, width=120))
        return
    text = render.report_json(data) if fmt == "json" else render.report_csv(data)
    if out_file:
        out_file.write_text(text + ("\n" if fmt == "json" else ""))
    else:
        click.echo(text)


@main.command()
@click.argument("job", type=int, required=False)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Folder for the PNG files.")
@click.pass_context
def chart(ctx, job: int | None, out_dir: Path) -> None:
    """PNG charts of JOB: emotions per folder and share over time."""
    from producer.charts import write_charts
    from producer.outputs import charts_for

    c = _context(ctx)
    with c.sessions() as session:
        paths = write_charts(charts_for(session, _job_or_latest(session, job)), out_dir)
    for path in paths:
        out.print(str(path))


@main.command()
@click.argument("job", type=int, required=False)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Folder for the copies.")
@click.option("--limit", type=int, default=None, help="At most this many images.")
@click.pass_context
def annotate(ctx, job: int | None, out_dir: Path, limit: int | None) -> None:
    """Annotated copies of JOB's images with faces: boxes, dominant emotion and percent."""
    from producer.outputs import annotate_job

    c = _context(ctx)
    with c.sessions() as session:
        written, unreadable = annotate_job(session, _job_or_latest(session, job), out_dir, c.settings, limit)
    for path in unreadable:
        console.print(f"[yellow]cannot read {path} any more; skipped")
    console.print(f"wrote {len(written)} annotated images to {out_dir}/")


@main.command("resume")
@click.argument("job", type=int)
@click.pass_context
def resume_cmd(ctx, job: int) -> None:
    """Re-enqueue JOB's pending images (after a Redis loss, say)."""
    c = _context(ctx)
    batches = resume(c.sessions, c.client(), job, c.settings.queue)
    console.print(f"job {job}: {batches} batches re-enqueued")


@main.command("retry-failed")
@click.argument("job", type=int)
@click.pass_context
def retry_failed(ctx, job: int) -> None:
    """Put JOB's failed images back to pending and enqueue them again."""
    c = _context(ctx)
    with c.sessions() as session:
        count = reset_failed(session, job)
    batches = resume(c.sessions, c.client(), job, c.settings.queue)
    console.print(f"job {job}: {count} failed images re-queued in {batches} batches")


@main.command()
@click.argument("photos", nargs=-1, type=click.Path(path_type=Path))
@click.option("--backend", type=click.Choice(["cnn", "deepface"]), envvar="BACKEND")
@click.option("--workers", type=int, default=1, help="Worker processes to start.")
@click.option("--timeout", type=float, default=1800.0)
@click.pass_context
def run(ctx, photos: tuple[Path, ...], backend: str | None, workers: int, timeout: float) -> None:
    """The embedded default, end to end: local Redis (unless REDIS_URL) and a worker are
    started for you, PHOTOS (default: sample photos) are analysed, the report printed."""
    from producer.embedded import embedded_system

    settings: Settings = ctx.obj
    backend = backend or settings.backend
    with embedded_system(settings, backend, workers, console) as (live, photo_paths):
        c = Context(live)
        paths = list(photos) or photo_paths
        result = submit(c.sessions, c.client(), paths, backend=backend, batch_size=live.batch_size,
                        name="demo" if not photos else str(paths[0]), force=False, queue=live.queue)
        console.print(f"job {result.job_id}: {result.queued} images queued, {result.duplicates} duplicates")
        _watch(c, result.job_id, timeout)
        with c.sessions() as session:
            render.report_table(job_report(session, result.job_id, by_folder=True), out)
            _print_failures(session, result.job_id)

main.add_command(models)

if __name__ == "__main__":
    sys.exit(main())
