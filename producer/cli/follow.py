"""Following a job until it is finished: the progress bar, and (only when asked) the
re-enqueueing of pending images after a stall."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from db.jobs import Progress, failed_images
from producer import render
from producer.cli.context import CliContext, console, out, progress_bar
from producer.resume import resume, wait_for_job
from producer.submit import SubmitResult


def found_nothing(result: SubmitResult) -> bool:
    """True when the submit met no image and no video: its job has nothing to finish."""
    return not result.found and not result.videos.found


def no_images(paths: Sequence[Path]) -> str:
    """The one line that says a submit found nothing to analyse."""
    return f"no images found under {', '.join(str(p) for p in paths)}"


def require_found(result: SubmitResult, paths: Sequence[Path]) -> None:
    """Commands that wait for their job (`run`, `submit --wait`) fail at once on an empty
    one: a finished job at 100% with all-zero means would hide the mistake."""
    if found_nothing(result):
        raise click.ClickException(no_images(paths))


def follow(c: CliContext, job_id: int, timeout: float | None, resume_stalled: bool) -> None:
    """Show progress until JOB has no pending image; fail when it cannot finish.

    With `resume_stalled`, pending images are re-enqueued after STALL_RESUME_AFTER
    seconds without progress (a lost Redis queue); redelivery never double-counts.
    """
    sessions = c.sessions if resume_stalled else c.read_sessions
    with progress_bar() as bar:
        task = bar.add_task(f"job {job_id}", total=None)

        def show(p: Progress) -> None:
            bar.update(
                task,
                total=p.total,
                completed=p.finished,
                description=f"job {job_id}: {p.faces} faces, {p.failed} failed, {p.rate:.1f} img/s",
            )

        def stalled() -> None:
            batches = resume(sessions, c.client, job_id, c.settings.queue)
            console.print(
                f"[yellow]job {job_id}: no progress for {c.settings.stall_seconds}s, "
                f"re-enqueued {batches} batches of pending images"
            )

        final = wait_for_job(
            sessions,
            job_id,
            timeout,
            show,
            on_stall=stalled if resume_stalled else None,
            stall_seconds=c.settings.stall_seconds,
        )
    console.print(render.progress_line(final, console.width), soft_wrap=True)
    if not final.complete:
        raise click.ClickException(f"job {job_id} not finished after {timeout}s")
    if final.total and final.failed == final.total:
        raise click.ClickException(
            f"job {job_id} could not run: all {final.total} images failed "
            f"(see `producer report {job_id}` and the worker log)"
        )


def print_failures(c: CliContext, job_id: int, limit: int = 20) -> None:
    """The first failed images of JOB with their reasons."""
    with c.read_sessions() as session:
        for path, reason in failed_images(session, job_id, limit=limit):
            out.print(f"  failed: {path}: {reason}", markup=False, soft_wrap=True)  # a path is never folded
