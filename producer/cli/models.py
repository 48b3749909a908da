"""`producer models fetch`: every model file fetched ahead of time, for machines that
will have no network (the Docker image runs it at build time)."""

from __future__ import annotations

import click

from emotion_batch.hashing import sha256_file
from producer.cli.context import CliContext, shared_options


@click.group("models")
def models() -> None:
    """Model files: fetch them ahead of time for offline machines."""


@models.command("fetch")
@click.option("--deepface", is_flag=True, help="Also DeepFace's emotion weights (into DEEPFACE_HOME).")
@shared_options
def fetch_cmd(c: CliContext, deepface: bool) -> None:
    """Download YuNet into MODEL_CACHE (sha256-checked) and check the packaged models."""
    from emotion_batch.detect.fetch import fetch_models

    for what, path, state in fetch_models(c.settings, deepface=deepface):
        click.echo(f"{what}: {path} (sha256 {sha256_file(path)[:16]}, {state})")
