"""`producer`: submit jobs, follow them, report, resume, and run the embedded demo.

One click group, its commands split by concern (rq's CLI is the model): jobs.py creates,
follows and re-queues jobs; live.py samples a camera or stream into a job; reports.py
reads results into reports, charts and copies;
run.py is the embedded default; models.py fetches model files; serve.py starts the web
service (producer/web). Every command takes the shared options of
`context.shared_options` and gets a lazily built `CliContext`.
"""

from __future__ import annotations

import click

from producer.cli.context import ErrorsAsOneLine
from producer.cli.jobs import migrate, resume_cmd, retry_failed, status, submit_cmd, watch
from producer.cli.live import live_cmd
from producer.cli.models import models
from producer.cli.reports import annotate, chart, report
from producer.cli.run import run
from producer.cli.serve import serve

__all__ = ["main"]


@click.group(cls=ErrorsAsOneLine)
def main() -> None:
    """emotion-batch: read the emotions on every face in large photo collections.

    Settings come from the environment or .env (see .env.example); --redis-url and
    --database-url override REDIS_URL and DATABASE_URL on any command.
    """


for command in (
    submit_cmd,
    watch,
    status,
    resume_cmd,
    retry_failed,
    live_cmd,
    migrate,
    report,
    chart,
    annotate,
    run,
    models,
    serve,
):
    main.add_command(command)
