"""What both streaming test modules use: the database (SQLite and PostgreSQL) and queue
fixtures, the image ids waiting on a queue, small unique JPEG trees, a job's rows, and a
stand-in for a worker's stored results."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from db.migrate import upgrade
from db.results import ResultKey, store_results
from db.schema import Image
from db.session import make_session_factory
from emotion_batch.config import Settings
from emotion_batch.detect import FaceBox
from emotion_batch.labels import EMOTIONS
from emotion_batch.pipeline import FaceResult, ImageResult
from tests.conftest import database_for

JPEG_BASE: bytes | None = None


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path):
    yield from database_for(request.param, request, tmp_path)


@pytest.fixture
def sessions(database_url: str):
    upgrade(database_url)
    return make_session_factory(database_url)


@pytest.fixture
def queue(request: pytest.FixtureRequest, redis_server):
    """A queue of this test's own on the real redis-server (emptied afterwards)."""
    import redis

    name = f"stream-{request.node.name}"[:120]
    client = redis.Redis.from_url(redis_server.url)
    client.delete(name)
    yield name
    client.delete(name)


def queued_ids(redis_url: str, queue: str) -> list[int]:
    """Image ids of every batch message waiting on `queue` (Celery protocol 2 bodies)."""
    import redis

    ids = []
    for raw in redis.Redis.from_url(redis_url).lrange(queue, 0, -1):
        envelope = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        ids += [ref["image_id"] for ref in args[0]["images"]]
    return ids


def unique_jpeg(path: Path, index: int) -> None:
    """A small valid JPEG whose content is unique to `index` (a comment segment)."""
    global JPEG_BASE
    if JPEG_BASE is None:
        import io

        from PIL import Image as PILImage

        buffer = io.BytesIO()
        PILImage.new("RGB", (16, 16), (120, 30, 60)).save(buffer, "JPEG")
        JPEG_BASE = buffer.getvalue()
    comment = f"test {index}".encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(JPEG_BASE[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + JPEG_BASE[2:])


def jpeg_tree(root: Path, n: int = 45) -> list[Path]:
    paths = [root / f"f{i % 3}" / f"{i:03d}.jpg" for i in range(n)]
    for i, path in enumerate(paths):
        unique_jpeg(path, i)
    return paths


def settings_for(url: str, **extra) -> Settings:
    return Settings(database_url=url, **extra)


def job_rows(sessions, job_id: int) -> list[Image]:
    with sessions() as session:
        return list(session.scalars(select(Image).where(Image.job_id == job_id).order_by(Image.id)))


class Interrupt(KeyboardInterrupt):
    pass


def analyse_all(sessions, job_id: int, key: ResultKey) -> int:
    """Store a face for every pending image, as a worker would (db.results)."""
    faces = 0
    with sessions() as session:
        ids = [r.id for r in job_rows(sessions, job_id) if r.status == "pending"]
        results = {}
        for n, image_id in enumerate(ids):
            emotion = EMOTIONS[n % len(EMOTIONS)]
            face = FaceResult(
                FaceBox(1, 1, 10, 10, 0.9), {e: (70.0 if e == emotion else 5.0) for e in EMOTIONS}, emotion
            )
            results[image_id] = ImageResult("x", None, 16, 16, None, (face,) if n % 5 else ())
            faces += 1 if n % 5 else 0
        store_results(session, results, key)
    return faces


def member_rows(sessions, job_id: int) -> list[Image]:
    """The job's images as every reader sees them: its own rows and the ones it shares."""
    from db.members import in_job

    with sessions() as session:
        return list(session.scalars(select(Image).where(in_job(job_id)).order_by(Image.id)))
