"""The embedded default for `producer run`: a loopback redis-server (when REDIS_URL is
unset), worker processes, an absolute SQLite path; the sample photos for the no-argument
demo (`sample_folder`), never written when the user names their own photos."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from rich.console import Console
from sqlalchemy.engine import make_url

from emotion_batch.config import Settings
from producer.local import LocalRedis, LocalWorker

STATE_DIR = Path(".emotion-batch")


def absolute_database_url(url: str) -> str:
    """Make a relative SQLite path absolute, so workers in other folders share the file."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return parsed.set(database=str(Path(parsed.database).resolve())).render_as_string(hide_password=False)
    return url


@contextmanager
def embedded_system(settings: Settings, backend: str, workers: int, console: Console) -> Iterator[Settings]:
    """Yield settings pointing at a running Redis and worker."""
    with ExitStack() as stack:
        redis_url = settings.redis_url
        if not redis_url:
            redis = stack.enter_context(LocalRedis(STATE_DIR / "redis"))
            redis_url = redis.url
            console.print(f"started redis-server on {redis_url}")
        live = settings.model_copy(
            update={
                "redis_url": redis_url,
                "database_url": absolute_database_url(settings.database_url),
            }
        )
        env = {"REDIS_URL": redis_url, "DATABASE_URL": live.database_url, "WORKER_BACKENDS": json.dumps([backend])}
        STATE_DIR.mkdir(exist_ok=True)
        stack.enter_context(LocalWorker(env, concurrency=workers, log_file=STATE_DIR / "worker.log"))
        console.print(f"started {workers} worker process(es); log: {STATE_DIR / 'worker.log'}")
        yield live


def sample_folder(console: Console) -> Path:
    """./sample-photos, written on first use: the demo's photos (only when none are named)."""
    from producer.samples import write_samples

    folder = Path("sample-photos")
    if not folder.is_dir():
        written = write_samples(folder)
        console.print(f"wrote {len(written)} sample photos to {folder}/")
    return folder
