"""What every command shares: the application context (settings, lazily built database
sessions and Celery client: producer.context), the shared options (one decorator,
rq-style) and the error handling."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.orm import Session

from emotion_batch.config import Settings
from emotion_batch.errors import (
    BrokerUnavailableError,
    EmotionBatchError,
    JobNotFoundError,
    SharedFolderChangedError,
    WeightsMissingError,
)
from producer.context import AppContext

# progress, warnings and summaries; each message one line however long (a path is never
# folded: long figures are laid out by render.fit)
console = Console(stderr=True, soft_wrap=True)
out = Console()  # the command's result (job id, report, paths)

F = TypeVar("F", bound=Callable[..., Any])


CliContext = AppContext  # what a command is handed: the context the web service uses too


def shared_options(command: F) -> F:
    """--redis-url and --database-url on a command, then a `CliContext` as its first argument.

    The options override REDIS_URL / DATABASE_URL, which `Settings` reads (with `.env`).
    """

    @click.option("--redis-url", help="Broker URL (overrides REDIS_URL).")
    @click.option("--database-url", help="SQLAlchemy URL (overrides DATABASE_URL).")
    @functools.wraps(command)
    def wrapper(*args: Any, redis_url: str | None, database_url: str | None, **kwargs: Any) -> Any:
        overrides: dict[str, Any] = {k: v for k, v in (("redis_url", redis_url), ("database_url", database_url)) if v}
        return command(CliContext(Settings(**overrides)), *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def with_command_hint(exc: EmotionBatchError) -> str:
    """The error's line with the command that helps: the library names no command."""
    if isinstance(exc, SharedFolderChangedError):
        return f"{exc}: run 'producer resume {exc.job_id}'"
    if isinstance(exc, BrokerUnavailableError) and exc.startable:
        return f"{exc}, or use `producer run` or `producer serve --embedded`, which start their own"
    if isinstance(exc, WeightsMissingError) and exc.downloadable:
        return f"{exc}, or run `producer models fetch` on a machine with network"
    return str(exc)


class ErrorsAsOneLine(click.Group):
    """Our errors become one clear line and a non-zero exit, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from pydantic import ValidationError
        from sqlalchemy.exc import DBAPIError

        from db.session import database_problem

        try:
            return super().invoke(ctx)
        except EmotionBatchError as exc:
            raise click.ClickException(with_command_hint(exc)) from exc
        except DBAPIError as exc:  # the database refused mid-command (read-only, locked, gone)
            raise click.ClickException(database_problem(exc)) from exc
        except ValidationError as exc:  # a setting from the environment or .env is invalid
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
            raise click.ClickException(f"invalid setting: {problems}") from exc


def existing_job(session: Session, job: int | None) -> int:
    """`job`, checked to exist; None means the newest job."""
    from db.jobs import get_job, latest_job_id

    if job is None:
        latest = latest_job_id(session)
        if latest is None:
            raise JobNotFoundError()
        return latest
    return get_job(session, job).id


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )
