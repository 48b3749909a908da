"""`producer serve`: the web service (API, docs at /docs, pages) on uvicorn."""

from __future__ import annotations

import click

from emotion_batch.config import Settings
from emotion_batch.errors import EmotionBatchError


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; beyond loopback WEB_TOKEN is required.")
@click.option("--port", type=int, default=8000, show_default=True)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Serve the JSON API and the pages (job list, live progress, reports, face gallery).

    Reads the same settings and database as the other commands and enqueues on the same
    Redis. Every request needs WEB_TOKEN when it is set; it must be set to listen beyond
    loopback. Uploads are stored under UPLOAD_ROOT.
    """
    import uvicorn

    from producer.web.app import create_app
    from producer.web.security import check_can_listen

    settings = ctx.obj if isinstance(ctx.obj, Settings) else Settings()
    try:
        check_can_listen(host, settings.web_token)
        app = create_app(settings)
    except EmotionBatchError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"serving on http://{host}:{port}/ (API docs: /docs)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=False, server_header=False)


if __name__ == "__main__":
    serve()
