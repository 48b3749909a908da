"""Overlapping jobs (issue 24): the same folder submitted again while its first job is
still pending queues nothing a second time; the second job follows the first's pending
images and finishes with their results; `resume` of either job re-enqueues what is still
pending. Nothing lost, nothing doubled, both jobs complete.

Real processes on SQLite and PostgreSQL: the `producer` CLI, a private redis-server and
a Celery worker started only once both jobs are registered."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from db.jobs import job_progress
from db.migrate import upgrade
from db.results import fail_images, store_results
from db.schema import Face
from db.schema import Image as ImageRow
from db.session import make_session_factory
from emotion_batch.broker import make_client
from emotion_batch.pipeline import ImageResult
from producer.local import LocalRedis, LocalWorker
from producer.resume import retry_failed
from producer.reuse import reuse_key
from producer.submit import SubmitOptions, submit
from tests.conftest import database_for, run_producer
from tests.faults_support import JobProbe, make_photo_set, wait_until

pytestmark = pytest.mark.integration
QUEUE = "emotion"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path):
    yield from database_for(request.param, request, tmp_path)


def _submit(env: dict[str, str], folder: Path) -> tuple[int, str]:
    result = run_producer(env, "submit", str(folder), "--batch-size", "4")
    assert result.returncode == 0, result.stderr[-3000:]
    return int(result.stdout.strip().splitlines()[-1]), result.stderr  # the summary goes to stderr


def _report(env: dict[str, str], job: int) -> dict:
    result = run_producer(env, "report", str(job), "--format", "json")
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def _followers(url: str, job: int) -> dict[int, int | None]:
    with make_session_factory(url)() as session:
        return dict(session.execute(select(ImageRow.id, ImageRow.reused_from).where(ImageRow.job_id == job)).all())


def _faces_rows(url: str) -> int:
    with make_session_factory(url)() as session:
        return session.scalar(select(func.count()).select_from(Face)) or 0


def _analysed(tmp: Path) -> int:
    """Images the worker analysed (not reused), from its batch summaries."""
    log = (tmp / "worker.log").read_text(errors="replace")
    return sum(int(n) for n in re.findall(r"BatchSummary\(job_id=\d+, batch_no=\d+, analysed=(\d+)", log))


def _finish(env: dict[str, str], tmp: Path, probes: list[JobProbe], count: int) -> None:
    with LocalWorker(env, name="overlap", log_file=tmp / "worker.log"):
        done = wait_until(lambda: all(p.finished() == count for p in probes), 300, interval=0.5)
    assert done, (tmp / "worker.log").read_text(errors="replace")[-3000:]


def test_second_submit_follows_the_pending_work_and_resume_of_either_job_finishes_it(
    tmp_path: Path, private_redis: LocalRedis, worker_env: dict[str, str], photos_dir: Path
) -> None:
    env = {**worker_env, "REDIS_URL": private_redis.url, "QUEUE": QUEUE, "BACKEND": "cnn", "WORKER_BACKENDS": '["cnn"]'}
    url, queue = env["DATABASE_URL"], redis.Redis.from_url(private_redis.url)
    count = 8
    make_photo_set(photos_dir, tmp_path / "first", count)

    # A folder submitted twice before any worker ran: the second job queues nothing.
    job1, _ = _submit(env, tmp_path / "first")
    queued = queue.llen(QUEUE)
    assert queued == count // 4
    job2, summary = _submit(env, tmp_path / "first")
    assert f"{count} results reused" in summary and queue.llen(QUEUE) == queued, summary
    firsts, seconds = _followers(url, job1), _followers(url, job2)
    assert sorted(v for v in seconds.values() if v is not None) == sorted(firsts)  # each follows one of job 1's
    assert _report(env, job2)["pending"] == count

    probes = [JobProbe(url, job1), JobProbe(url, job2)]
    _finish(env, tmp_path, probes, count)
    first, second = _report(env, job1), _report(env, job2)
    for key in ("images", "faces", "no_face", "failed", "pending", "dominant", "share", "mean"):
        assert first[key] == second[key], key
    assert first["faces"] > 0 and first["pending"] == 0 and first["failed"] == 0
    assert _faces_rows(url) == first["faces"]  # the second job's images show the first's faces
    assert _analysed(tmp_path) == count  # each content analysed once

    # Redis lost while both jobs wait: resume of the second queues its images itself, and
    # resume of the first finishes the first (with the results the second's analysis stored).
    make_photo_set(photos_dir, tmp_path / "second", 2 * count)
    for made in sorted((tmp_path / "second").glob("*.jpg"))[:count]:
        made.unlink()  # the first folder's contents: the rest are others
    job3, _ = _submit(env, tmp_path / "second")
    job4, _ = _submit(env, tmp_path / "second")
    assert all(v is not None for v in _followers(url, job4).values())
    queue.flushall()
    resumed = run_producer(env, "resume", str(job4))
    said = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0 and f"{count} pending images re-enqueued" in said, said
    probes = [JobProbe(url, job3), JobProbe(url, job4)]
    _finish(env, tmp_path, probes[1:], count)
    assert probes[0].finished() == 0  # its batches were lost: still pending, not failed
    assert run_producer(env, "resume", str(job3)).returncode == 0
    _finish(env, tmp_path, probes, count)
    third, fourth = _report(env, job3), _report(env, job4)
    for key in ("images", "faces", "no_face", "failed", "pending", "dominant"):
        assert third[key] == fourth[key], key
    assert third["pending"] == 0 and third["faces"] > 0
    assert _analysed(tmp_path) == 2 * count  # the second folder's contents once more, not twice


@pytest.fixture
def sessions(database_url: str):
    upgrade(database_url)
    return make_session_factory(database_url)


def test_followers_take_a_result_only_for_their_content_and_fail_with_the_reason_otherwise(
    tmp_path: Path, sessions, database_url: str, redis_server
) -> None:
    """In process, a real redis-server and database: the image followed fails, is found
    changed, or finishes; each follower settles with it, in the worker's transaction,
    and retry-failed queues the failed followers on their own."""
    from tests.streaming_support import job_rows, jpeg_tree, queued_ids, settings_for

    jpeg_tree(tmp_path / "photos", 3)
    settings = settings_for(database_url, detector="haar")  # its file ships with OpenCV
    key = reuse_key("cnn", settings, force=False)
    assert key is not None
    queue = f"overlap-{tmp_path.name}"[:100]
    client = make_client(settings, redis_server.url)
    options = dict(backend="cnn", batch_size=8, force=False, queue=queue, settings=settings)
    first = submit(sessions, client, [tmp_path / "photos"], SubmitOptions(name="first", **options))
    second = submit(sessions, client, [tmp_path / "photos"], SubmitOptions(name="second", **options))
    assert (first.queued, second.queued, second.reused) == (3, 0, 3)
    broken, changed, fine = job_rows(sessions, first.job_id)
    with sessions() as session:
        fail_images(session, [broken.id], "not an image: cannot identify image file")
        moved = ImageResult(changed.path, None, 16, 16, None, (), sha256="0" * 64)  # other bytes read
        store_results(session, {changed.id: moved}, key, submitted={changed.id: changed.sha256})
        same = ImageResult(fine.path, None, 16, 16, None, (), sha256=fine.sha256)
        store_results(session, {fine.id: same}, key, submitted={fine.id: fine.sha256})
    followers = {row.sha256: row for row in job_rows(sessions, second.job_id)}
    assert followers[broken.sha256].status == "failed" and followers[broken.sha256].reused_from is None
    assert f"image {broken.id} of another job, which failed: not an image" in (followers[broken.sha256].error or "")
    assert "found the file changed" in (followers[changed.sha256].error or "")
    assert (followers[fine.sha256].status, followers[fine.sha256].reused_from) == ("no_face", fine.id)
    with sessions() as session:
        progress = job_progress(session, second.job_id)
    assert progress.complete and (progress.failed, progress.no_face, progress.pending) == (2, 1, 0)

    redis.Redis.from_url(redis_server.url).delete(queue)
    reset, _batches = retry_failed(sessions, client, second.job_id, queue, settings=settings)
    assert reset == 2
    failed_followers = {followers[broken.sha256].id, followers[changed.sha256].id}
    assert set(queued_ids(redis_server.url, queue)) == failed_followers
    redis.Redis.from_url(redis_server.url).delete(queue)
