"""Commands that create, follow and re-queue jobs: submit, watch, status, resume,
retry-failed, migrate."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click
from rich.markup import escape

from db.jobs import job_progress
from db.videos import pending_segment_count
from emotion_batch.classify import BACKENDS
from emotion_batch.config import DETECTOR_NAMES
from emotion_batch.errors import PathNotFoundError
from producer import render
from producer.cli.context import CliContext, console, existing_job, out, progress_bar, shared_options
from producer.cli.follow import follow, found_nothing, no_images, print_failures, require_found
from producer.render import counted, fit
from producer.resume import resume_job
from producer.resume import retry_failed as retry_failed_images
from producer.stream import SubmitProgress
from producer.submit import SubmitOptions, SubmitResult, submit

backend_option = click.option(
    "--backend", type=click.Choice(list(BACKENDS)), default=None, help="Classifier (default: the BACKEND setting, cnn)."
)
batch_size_option = click.option(
    "--batch-size", type=int, help="Images per batch, 1-1024 (default: the BATCH_SIZE setting, 32)."
)


@click.command("submit")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@backend_option
@batch_size_option
@click.option("--name", help="Job name (default: the first path).")
@click.option("--force", is_flag=True, help="Re-analyse images already analysed with this model.")
@click.option(
    "--rehash",
    is_flag=True,
    help="Read every file to hash it, even those whose path, size and "
    "modification time match an image analysed before.",
)
@click.option(
    "--wait",
    is_flag=True,
    help="Block with a progress bar until the job is finished; "
    "re-enqueues pending images after STALL_RESUME_AFTER seconds without progress.",
)
@click.option("--timeout", type=float, default=None, help="With --wait: give up after this many seconds.")
@click.option(
    "--detector",
    type=click.Choice(DETECTOR_NAMES),
    default=None,
    help="Face detector the workers use for this job (default: their DETECTOR setting); "
    "skip: each image is one face (folders of face crops).",
)
@click.option(
    "--fps",
    type=click.FloatRange(min=0, min_open=True, max=120),
    default=None,
    help="Video frames sampled per second (default: the VIDEO_FPS setting, 1).",
)
@shared_options
def submit_cmd(
    c: CliContext,
    paths: tuple[Path, ...],
    backend: str | None,
    batch_size: int | None,
    name: str | None,
    force: bool,
    rehash: bool,
    wait: bool,
    timeout: float | None,
    detector: str | None,
    fps: float | None,
) -> None:
    """Scan PATHS, record a job and its images in the database (creating or upgrading the
    schema) and enqueue batches on Redis as the scan goes. Prints the job id."""
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise PathNotFoundError(missing)
    options = SubmitOptions.from_settings(
        c.settings,
        paths,
        backend=backend,
        batch_size=batch_size,
        name=name,
        fps=fps,
        force=force,
        rehash=rehash,
        detector=detector,
    )
    with progress_bar() as bar:
        result = submit(c.sessions, c.client, paths, options, on_progress=_stream_progress(bar))
    submit_summary(result)
    out.print(result.job_id)
    if wait:
        require_found(result, paths)
        follow(c, result.job_id, timeout, resume_stalled=True)
    elif found_nothing(result):
        console.print(no_images(paths), style="yellow", markup=False)


def _stream_progress(bar) -> Callable[[SubmitProgress], None]:  # noqa: ANN001 (rich Progress)
    """Three counters that move together while a submit streams: files scanned, rows
    registered (committed), images queued."""
    tasks = {
        key: bar.add_task(label, total=None)
        for key, label in (("scanned", "scanned"), ("registered", "registered"), ("queued", "queued"))
    }

    def show(p: SubmitProgress) -> None:
        for key, task in tasks.items():
            bar.update(task, completed=getattr(p, key))

    return show


def submit_summary(result: SubmitResult, follow_hint: bool = True) -> None:
    """What a submit found, queued and reused, and what it met on the way (stderr)."""
    for folder in result.problems.unreadable_dirs:
        console.print(f"[yellow]unreadable folder: {folder}", markup=False)
    for path in result.problems.missing:
        console.print(f"[yellow]not found: {path}")
    if result.problems.broken_links:
        console.print(
            f"[yellow]{result.problems.broken_links} broken symbolic links skipped, e.g. "
            f"{result.problems.broken_link_examples[0]!r}"
        )
    parts = [
        f"job {result.job_id}: {counted(result.found, 'image')} found ({result.read} read",
        "the others' hashes reused)",
        f"{result.queued} queued in {counted(result.batches, 'batch', 'batches')}",
        f"{counted(result.reused, 'result')} reused",
        f"{counted(result.duplicates, 'duplicate')} skipped",
        f"{result.failed_at_scan} unreadable or too large",
    ]
    console.print(fit(parts, console.width), markup=False, soft_wrap=True)
    if follow_hint:
        console.print(f"follow it: producer watch {result.job_id}   report: producer report {result.job_id}")
    videos = result.videos
    if videos.found:
        console.print(
            f"videos: {videos.registered} registered, {videos.segments} segments queued, "
            f"{videos.failed} unusable, {videos.duplicates} duplicates skipped "
            f"(report: producer report {result.job_id} --by video)"
        )


@click.command()
@click.argument("job", type=int)
@click.option("--timeout", type=float, default=None, help="Give up (exit non-zero) after this many seconds.")
@click.option(
    "--resume-stalled",
    is_flag=True,
    help="Writes: after STALL_RESUME_AFTER seconds without progress, re-enqueue the pending "
    "images (after a Redis loss). Without it, watch only reads.",
)
@shared_options
def watch(c: CliContext, job: int, timeout: float | None, resume_stalled: bool) -> None:
    """Follow JOB live until it is finished (read-only unless --resume-stalled)."""
    with c.read_sessions() as session:
        existing_job(session, job)
    follow(c, job, timeout, resume_stalled)


@click.command()
@click.argument("job", type=int, required=False)
@shared_options
def status(c: CliContext, job: int | None) -> None:
    """Done / failed / pending, faces, images per second and ETA of JOB (default: the
    latest job; read-only)."""
    with c.read_sessions() as session:
        job = existing_job(session, job)
        progress = job_progress(session, job)
    out.print(render.progress_line(progress, out.width), soft_wrap=True)
    if progress.scan_error:
        console.print(f"[red]{escape(progress.scan_error)}")
    print_failures(c, job)


@click.command("resume")
@click.argument("job", type=int)
@shared_options
def resume_cmd(c: CliContext, job: int) -> None:
    """Enqueue JOB's pending images again on Redis (after a Redis loss, say) and finish
    its scan if its submit was interrupted."""
    with c.sessions() as session:
        existing_job(session, job)
        finished = job_progress(session, job).complete and not pending_segment_count(session, job)
    if finished:  # nothing to send: no progress bars for a scan that will not happen
        console.print(f"job {job}: finished, nothing to resume")
        return
    with progress_bar() as bar:
        resumed = resume_job(
            c.sessions, c.client, job, c.settings.queue, settings=c.settings, on_progress=_stream_progress(bar)
        )
    console.print(
        f"job {job}: {counted(resumed.requeued, 'pending image')} re-enqueued; "
        f"{counted(resumed.batches, 'batch', 'batches')} in all"
    )
    if resumed.scan:
        console.print(
            f"job {job}: interrupted scan finished: {resumed.scan.scanned} more images found, "
            f"{resumed.scan.queued} queued, {resumed.scan.reused} results reused"
        )


@click.command("retry-failed")
@click.argument("job", type=int)
@shared_options
def retry_failed(c: CliContext, job: int) -> None:
    """Set JOB's failed images back to pending in the database and enqueue them again."""
    with c.sessions() as session:
        existing_job(session, job)
    count, batches = retry_failed_images(c.sessions, c.client, job, c.settings.queue, settings=c.settings)
    console.print(f"job {job}: {counted(count, 'failed image')} re-queued in {counted(batches, 'batch', 'batches')}")


@click.command()
@shared_options
def migrate(c: CliContext) -> None:
    """Create the database schema, or upgrade it to the newest revision (Alembic)."""
    from sqlalchemy.engine import make_url

    c.sessions  # noqa: B018 - building the session factory upgrades the schema
    where = make_url(c.settings.database_url).render_as_string(hide_password=True)
    console.print(f"database at the newest schema revision: {where}", markup=False)
