"""`producer serve`: the web service (JSON API, docs at /docs, pages) on uvicorn."""

from __future__ import annotations

import signal
import sys
from contextlib import ExitStack

import click

from emotion_batch.config import Settings
from producer.cli.context import CliContext, console, shared_options


@click.command("serve")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; beyond loopback WEB_TOKEN is required.",
)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option(
    "--embedded",
    is_flag=True,
    help="Also start what `producer run` starts: a loopback redis-server (unless REDIS_URL is "
    "set; data in .emotion-batch/redis) and worker processes, stopped with the server; writes "
    "sample photos to ./sample-photos (submittable by path when ALLOWED_ROOTS is empty).",
)
@click.option("--workers", type=int, default=1, show_default=True, help="With --embedded: worker processes.")
@shared_options
def serve(c: CliContext, host: str, port: int, embedded: bool, workers: int) -> None:
    """Serve the JSON API and the pages (job list, live progress, reports, face gallery).

    Creates or upgrades the database schema, like submit; reads the same settings and
    database as the other commands and enqueues on the same Redis. Every request needs
    WEB_TOKEN when it is set, and it must be set to listen beyond loopback. Uploads are
    stored under UPLOAD_ROOT; server paths must lie under ALLOWED_ROOTS.
    """
    import uvicorn

    from producer.web.app import create_app
    from producer.web.security import check_can_listen
    from producer.web.timeouts import header_deadline_protocol

    token = c.settings.web_token
    check_can_listen(host, token is not None and bool(token.get_secret_value()))
    with ExitStack() as stack:
        if embedded:
            # uvicorn re-raises the SIGTERM it caught once it has shut down: make that an
            # exit that unwinds this stack, so the embedded worker and redis-server stop too.
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        settings = stack.enter_context(_embedded(c.settings, workers)) if embedded else c.settings
        app = create_app(settings)
        console.print(f"serving on http://{host}:{port}/ (API docs: /docs)")
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="info",
            proxy_headers=False,
            server_header=False,
            http=header_deadline_protocol(settings.web_header_timeout, settings.web_max_connections),
            timeout_keep_alive=settings.web_keep_alive,
        )


def _embedded(settings: Settings, workers: int):  # noqa: ANN202 (a context manager of Settings)
    from contextlib import contextmanager

    from producer.embedded import embedded_system, sample_folder

    @contextmanager
    def running():  # noqa: ANN202
        with embedded_system(settings, settings.backend, workers, console) as live:
            roots = live.allowed_roots or [sample_folder(console).resolve()]
            yield live.model_copy(update={"allowed_roots": roots})

    return running()
