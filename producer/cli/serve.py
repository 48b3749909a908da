"""`producer serve`: the web service (JSON API, docs at /docs, pages) on uvicorn."""

from __future__ import annotations

import click

from producer.cli.context import CliContext, console, shared_options


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; beyond loopback WEB_TOKEN is required.")
@click.option("--port", type=int, default=8000, show_default=True)
@shared_options
def serve(c: CliContext, host: str, port: int) -> None:
    """Serve the JSON API and the pages (job list, live progress, reports, face gallery).

    Creates or upgrades the database schema, like submit; reads the same settings and
    database as the other commands and enqueues on the same Redis. Every request needs
    WEB_TOKEN when it is set, and it must be set to listen beyond loopback. Uploads are
    stored under UPLOAD_ROOT; server paths must lie under ALLOWED_ROOTS.
    """
    import uvicorn

    from producer.web.app import create_app
    from producer.web.security import check_can_listen

    check_can_listen(host, c.settings.web_token is not None and bool(c.settings.web_token.get_secret_value()))
    app = create_app(c.settings)
    console.print(f"serving on http://{host}:{port}/ (API docs: /docs)")
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=False, server_header=False)
