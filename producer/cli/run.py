"""`producer run`: the embedded default, end to end on one machine."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from db.reports import job_report
from emotion_batch.errors import PathNotFoundError
from producer import render
from producer.cli.context import CliContext, console, out, shared_options
from producer.cli.follow import follow, print_failures, require_found
from producer.cli.jobs import backend_option, batch_size_option, submit_summary
from producer.submit import SubmitOptions, submit


@click.command()
@click.argument("photos", nargs=-1, type=click.Path(path_type=Path))
@backend_option
@batch_size_option
@click.option("--workers", type=int, default=1, show_default=True, help="Worker processes to start.")
@click.option("--timeout", type=float, default=1800.0, show_default=True, help="Give up after this many seconds.")
@shared_options
def run(
    c: CliContext, photos: tuple[Path, ...], backend: str | None, batch_size: int | None, workers: int, timeout: float
) -> None:
    """Analyse PHOTOS end to end and print the report. Starts a redis-server (unless
    REDIS_URL is set; data in .emotion-batch/redis) and WORKERS Celery worker processes
    (log in .emotion-batch/worker.log), stopped at the end; without PHOTOS writes sample
    photos to ./sample-photos and analyses them; records the job in the database (DATABASE_URL)."""
    from emotion_batch.detect import choose_detector
    from producer.embedded import embedded_system, sample_folder

    missing = [str(p) for p in photos if not p.exists()]
    if missing:  # before any process starts, as `submit`
        raise PathNotFoundError(missing)
    # named after the first path, "demo" for the sample photos
    options = SubmitOptions.from_settings(c.settings, photos or [Path("demo")], backend=backend, batch_size=batch_size)
    detector = choose_detector(c.settings)  # YuNet downloaded here, in sight, if it must be
    console.print(f"face detector: {detector.name} ({detector.version})")
    with embedded_system(c.settings, options.backend, workers, console) as live:
        lc = CliContext(live)
        paths = list(photos) or [sample_folder(console)]
        options = replace(options, queue=live.queue, settings=live, video=None)  # the embedded system's
        result = submit(lc.sessions, lc.client, paths, options)
        submit_summary(result, follow_hint=False)
        require_found(result, paths)
        follow(lc, result.job_id, timeout, resume_stalled=True)
        with lc.read_sessions() as session:
            render.report_table(job_report(session, result.job_id, by="folder"), out)
        print_failures(lc, result.job_id)
