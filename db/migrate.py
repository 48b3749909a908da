"""Create or upgrade the schema to the newest Alembic revision."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

INI = Path(__file__).with_name("alembic.ini")


def alembic_config(url: str) -> Config:
    """An Alembic config for `url` that leaves the caller's logging alone."""
    config = Config(str(INI))
    config.attributes["url"] = url
    config.attributes["configure_logging"] = False
    return config


def upgrade(url: str) -> None:
    """Bring the database at `url` to the head revision (idempotent)."""
    command.upgrade(alembic_config(url), "head")
