"""Commands that create, follow and re-queue jobs: submit, watch, status, resume,
retry-failed, migrate."""

from __future__ import annotations

from pathlib import Path

import click

from db.jobs import job_progress, reset_failed
from emotion_batch.classify import BACKENDS
from emotion_batch.errors import PathNotFoundError
from producer import render
from producer.cli.context import CliContext, console, existing_job, out, progress_bar, shared_options
from producer.cli.follow import follow, print_failures
from producer.submit import SubmitResult, resume, submit

backend_option = click.option(
    "--backend", type=click.Choice(list(BACKENDS)), default=None,
    help="Classifier (default: the BACKEND setting, cnn).")


@click.command("submit")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@backend_option
@click.option("--batch-size", type=int, help="Images per batch (default: the BATCH_SIZE setting, 32).")
@click.option("--name", help="Job name (default: the first path).")
@click.option("--force", is_flag=True, help="Re-analyse images already analysed with this model.")
@click.option("--wait", is_flag=True, help="Block with a progress bar until the job is finished; "
              "re-enqueues pending images after STALL_RESUME_AFTER seconds without progress.")
@click.option("--timeout", type=float, default=None, help="With --wait: give up after this many seconds.")
@shared_options
def submit_cmd(c: CliContext, paths: tuple[Path, ...], backend: str | None, batch_size: int | None,
               name: str | None, force: bool, wait: bool, timeout: float | None) -> None:
    """Scan PATHS, record a job and its images in the database (creating or upgrading the
    schema) and enqueue batches on Redis. Prints the job id."""
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise PathNotFoundError(missing)
    with progress_bar() as bar:
        scanning = bar.add_task("scan + hash", total=None)
        enqueueing = bar.add_task("enqueue", total=None, visible=False)

        def scanned(_file: object) -> None:
            bar.advance(scanning)
            bar.update(enqueueing, total=bar.tasks[scanning].completed)

        result = submit(
            c.sessions, c.client, paths, backend=backend or c.settings.backend,
            batch_size=batch_size or c.settings.batch_size, name=name or str(paths[0]), force=force,
            queue=c.settings.queue, on_scan=scanned,
            on_batch=lambda n: bar.update(enqueueing, advance=n, visible=True),
        )
        bar.update(scanning, total=result.found, completed=result.found)
        bar.update(enqueueing, total=result.queued, completed=result.queued, visible=True)
    _summary(result)
    out.print(result.job_id)
    if wait:
        follow(c, result.job_id, timeout, resume_stalled=True)


def _summary(result: SubmitResult) -> None:
    for folder in result.problems.unreadable_dirs:
        console.print(f"[yellow]unreadable folder: {folder}")
    for path in result.problems.missing:
        console.print(f"[yellow]not found: {path}")
    console.print(
        f"job [bold]{result.job_id}[/]: {result.queued} images queued in {result.batches} batches, "
        f"{result.duplicates} duplicates skipped, {result.failed_at_scan} unreadable\n"
        f"follow it: producer watch {result.job_id}   report: producer report {result.job_id}"
    )


@click.command()
@click.argument("job", type=int)
@click.option("--timeout", type=float, default=None, help="Give up (exit non-zero) after this many seconds.")
@click.option("--resume-stalled", is_flag=True,
              help="Writes: after STALL_RESUME_AFTER seconds without progress, re-enqueue the pending "
              "images (after a Redis loss). Without it, watch only reads.")
@shared_options
def watch(c: CliContext, job: int, timeout: float | None, resume_stalled: bool) -> None:
    """Follow JOB live until it is finished (read-only unless --resume-stalled)."""
    with c.read_sessions() as session:
        existing_job(session, job)
    follow(c, job, timeout, resume_stalled)


@click.command()
@click.argument("job", type=int)
@shared_options
def status(c: CliContext, job: int) -> None:
    """Done / failed / pending, faces, images per second and ETA of JOB (read-only)."""
    with c.read_sessions() as session:
        out.print(render.progress_line(job_progress(session, existing_job(session, job))))
    print_failures(c, job)


@click.command("resume")
@click.argument("job", type=int)
@shared_options
def resume_cmd(c: CliContext, job: int) -> None:
    """Enqueue JOB's pending images again on Redis (after a Redis loss, say)."""
    batches = resume(c.sessions, c.client, job, c.settings.queue)
    console.print(f"job {job}: {batches} batches re-enqueued")


@click.command("retry-failed")
@click.argument("job", type=int)
@shared_options
def retry_failed(c: CliContext, job: int) -> None:
    """Set JOB's failed images back to pending in the database and enqueue them again."""
    with c.sessions() as session:
        existing_job(session, job)
        count = reset_failed(session, job)
    batches = resume(c.sessions, c.client, job, c.settings.queue)
    console.print(f"job {job}: {count} failed images re-queued in {batches} batches")


@click.command()
@shared_options
def migrate(c: CliContext) -> None:
    """Create the database schema, or upgrade it to the newest revision (Alembic)."""
    from sqlalchemy.engine import make_url

    c.sessions  # noqa: B018 - building the session factory upgrades the schema
    where = make_url(c.settings.database_url).render_as_string(hide_password=True)
    console.print(f"database at the newest schema revision: {where}", markup=False)
