"""The streaming submit against a real redis-server and real SQLite / PostgreSQL databases:
an interrupted submit completed by resume without duplicates, a second submit that reads
nothing and queues nothing, the per-job counters the progress reads, and the scan's edge
cases (sizes checked before hashing, names that are not UTF-8, broken links)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from db.jobs import job_progress, reset_failed
from db.reports import job_report
from db.results import ResultKey, store_results
from db.schema import Face, Image, Job
from emotion_batch.broker import make_client
from emotion_batch.classify import expected_model_version
from emotion_batch.config import Settings
from emotion_batch.errors import ConfigurationError
from emotion_batch.paths import from_db, to_db
from emotion_batch.pipeline import ImageResult
from producer.resume import resume_job
from producer.reuse import reuse_key
from producer.submit import SubmitOptions, submit
from tests.streaming_support import (
    Interrupt,
    analyse_all,
    database_url,  # noqa: F401 (a fixture)
    job_rows,
    jpeg_tree,
    member_rows,
    queue,  # noqa: F401 (a fixture)
    queued_ids,
    sessions,  # noqa: F401 (a fixture)
    settings_for,
    unique_jpeg,
)


def test_interrupted_submit_is_resumed_without_duplicates(tmp_path, sessions, database_url, redis_server, queue):
    root = tmp_path / "photos"
    paths = jpeg_tree(root)
    (root / "f2" / "copy.jpg").write_bytes(paths[0].read_bytes())  # same content: one row
    os.symlink(root / "gone.jpg", root / "f1" / "broken.jpg")
    client = make_client(settings_for(database_url), redis_server.url)

    def stop_after_two_chunks(progress) -> None:
        if progress.scanned >= 20:
            raise Interrupt

    with pytest.raises(Interrupt):
        options = SubmitOptions(backend="cnn", batch_size=4, name="big", force=False, queue=queue, chunk=10)
        submit(sessions, client, [root], options, on_progress=stop_after_two_chunks)
    with sessions() as session:
        job = session.scalars(select(Job).order_by(Job.id.desc())).first()
        assert job.scan_complete is False and job.scanned == 20
        progress = job_progress(session, job.id)
    first_rows = job_rows(sessions, job.id)
    assert progress.total == len(first_rows) == 20 and not progress.complete
    # each committed chunk was on the queue before the interruption (the 20 ids, 5 batches)
    assert sorted(queued_ids(redis_server.url, queue)) == [r.id for r in first_rows]

    resumed = resume_job(sessions, client, job.id, queue, settings=settings_for(database_url))
    rows = job_rows(sessions, job.id)
    assert resumed.requeued == 20 and resumed.scan is not None and resumed.scan.scanned == 46 - 20
    assert resumed.problems.broken_links == 1
    assert len(rows) == 45 and len({r.path for r in rows}) == 45 and len({r.sha256 for r in rows}) == 45
    assert {Path(r.path) for r in rows} == set(paths)
    with sessions() as session:
        job = session.get(Job, job.id)
        assert job.scan_complete and job.scanned == 46 and job.duplicates == 1
        progress = job_progress(session, job.id)
    assert progress.total == progress.pending == 45 and not progress.complete
    queued = queued_ids(redis_server.url, queue)
    # every image is on the queue; the 20 registered before the interruption twice
    # (the first sends and the resume's), which the guarded writes make harmless
    assert set(queued) == {r.id for r in rows} and len(queued) == 45 + 20


def test_second_submit_reads_nothing_and_queues_nothing(tmp_path, sessions, database_url, redis_server, queue):
    root = tmp_path / "photos"
    paths = jpeg_tree(root, 30)
    settings = settings_for(database_url, detector="haar")  # its file ships with OpenCV
    key = reuse_key("cnn", settings, force=False)
    assert key and key.model_version == expected_model_version("cnn", settings)
    client = make_client(settings, redis_server.url)
    kwargs = dict(backend="cnn", batch_size=8, force=False, queue=queue, settings=settings, chunk=7)
    first = submit(sessions, client, [root], SubmitOptions(name="first", **kwargs))
    assert (first.found, first.read, first.queued, first.reused) == (30, 30, 30, 0)
    faces = analyse_all(sessions, first.job_id, key)
    with sessions() as session:
        face_rows = session.scalar(select(func.count(Face.id)))
        report1 = job_report(session, first.job_id, by="folder")

    second = submit(sessions, client, [root], SubmitOptions(name="second", **kwargs))
    assert (second.found, second.read, second.queued, second.batches, second.reused) == (30, 0, 0, 0, 30)
    with sessions() as session:
        progress = job_progress(session, second.job_id)
        report2 = job_report(session, second.job_id, by="folder")
        assert session.scalar(select(func.count(Face.id))) == face_rows  # shared, not copied
    assert progress.complete and progress.total == 30 and progress.faces == faces
    for key in ("images", "faces", "no_face", "dominant", "share", "mean", "folders"):
        assert report2[key] == report1[key], key
    assert job_rows(sessions, second.job_id) == [] and len(member_rows(sessions, second.job_id)) == 30  # shared rows

    changed = paths[3]
    changed.write_bytes(changed.read_bytes() + b"\0")  # new size and mtime: read again
    third = submit(sessions, client, [root], SubmitOptions(name="third", **kwargs))
    assert (third.read, third.queued, third.reused) == (1, 1, 29)
    forced = submit(sessions, client, [root], SubmitOptions(name="rehash", rehash=True, **kwargs))
    # read again, results still reused; the changed file, still pending in the third job,
    # is not queued again but follows that image (db.followers)
    assert (forced.read, forced.queued, forced.reused) == (30, 0, 30)


def test_counters_follow_every_status_change(sessions, tmp_path, database_url, redis_server, queue):
    paths = jpeg_tree(tmp_path / "photos", 40)
    (tmp_path / "photos" / "bad.jpg").write_text("not an image")
    client = make_client(settings_for(database_url), redis_server.url)
    options = SubmitOptions(backend="cnn", batch_size=8, name="c", force=False, queue=queue)
    result = submit(sessions, client, [tmp_path / "photos"], options)
    ids = [r.id for r in job_rows(sessions, result.job_id)]
    assert len(ids) == len(paths) + 1

    def store(part: list[int], error: bool) -> None:
        with sessions() as session:
            store_results(
                session,
                {i: ImageResult("x", "corrupt" if error else None, 8, 8, None, ()) for i in part},
                ResultKey("cnn", "v", "d"),
            )

    threads = [threading.Thread(target=store, args=(ids[k::4], k == 3)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    def check() -> None:
        with sessions() as session:
            progress = job_progress(session, result.job_id)
            truth = dict(
                session.execute(
                    select(Image.status, func.count()).where(Image.job_id == result.job_id).group_by(Image.status)
                ).all()
            )
            faces = session.scalar(
                select(func.coalesce(func.sum(Image.face_count), 0)).where(Image.job_id == result.job_id)
            )
        assert (progress.pending, progress.done, progress.no_face, progress.failed, progress.faces) == (
            truth.get("pending", 0),
            truth.get("done", 0),
            truth.get("no_face", 0),
            truth.get("failed", 0),
            faces,
        )

    check()
    with sessions() as session:
        assert reset_failed(session, result.job_id) == len(ids[3::4])
    check()
    with sessions() as session:
        session.execute(delete(Image).where(Image.id.in_(ids[:5])))
        session.commit()
    check()


def test_batch_size_rule_and_nothing_recorded(sessions, database_url, tmp_path, redis_server, queue):
    jpeg_tree(tmp_path / "p", 3)
    client = make_client(settings_for(database_url), redis_server.url)
    for size in (0, -5, 1025):
        with pytest.raises(ConfigurationError, match="between 1 and 1024"):
            options = SubmitOptions(backend="cnn", batch_size=size, name="x", force=False, queue=queue)
            submit(sessions, client, [tmp_path / "p"], options)
    with sessions() as session:
        assert session.scalar(select(func.count(Job.id))) == 0


def test_size_checked_before_hashing_and_odd_names_kept(sessions, database_url, tmp_path, redis_server, queue):
    root = tmp_path / "p"
    jpeg_tree(root, 3)
    huge = root / "huge.jpg"
    with open(huge, "wb") as handle:
        handle.truncate(20 * 1024**3)  # 20 GB, sparse: never read
    odd = os.fsdecode(bytes(root) + b"/caf\xe9-\xff.jpg")
    unique_jpeg(Path(odd), 99)
    settings = settings_for(database_url, max_file_bytes=10_000_000)
    client = make_client(settings, redis_server.url)
    started = time.monotonic()
    options = SubmitOptions(backend="cnn", batch_size=8, name="odd", force=False, queue=queue, settings=settings)
    result = submit(sessions, client, [root], options)
    assert time.monotonic() - started < 10
    rows = {r.path: r for r in job_rows(sessions, result.job_id)}
    assert len(rows) == 5 and result.failed_at_scan == 1 and result.queued == 4
    too_big = rows[str(huge)]
    assert too_big.status == "failed" and "too large" in too_big.error and too_big.size_bytes == 20 * 1024**3
    stored = to_db(odd)
    assert stored.startswith("bytes:") and stored in rows and rows[stored].status == "pending"
    assert from_db(stored) == odd and Path(from_db(stored)).read_bytes()[:2] == b"\xff\xd8"


def test_files_not_read_share_larger_transactions() -> None:
    """Files read close a chunk at `chunk`; files whose hash was reused and that become new
    rows (a re-run under another model) at 5 x `chunk`; files shared as they are (an
    unchanged re-run) at 20 x `chunk`; a mix in proportion."""
    from db.records import ScannedFile
    from producer.reuse import READ_UNITS, REUSED_UNITS, SHARED_UNITS, weighted_chunks

    assert (READ_UNITS // REUSED_UNITS, READ_UNITS // SHARED_UNITS) == (5, 20)

    def files(n: int, read: bool, shared: int | None = None) -> list[ScannedFile]:
        return [
            ScannedFile(f"/p/{i}.jpg", "/p", f"{read}{shared}{i}", 1, None, read=read, shared=shared) for i in range(n)
        ]

    stream = files(9, True) + files(30, False) + files(100, False, shared=7) + files(2, True)
    sizes = [len(c) for c in weighted_chunks(iter(stream), 4)]
    # 4 read, 4 read, 1 read + 15 reused (20 + 60 units), 15 reused + 20 shared, 80 shared,
    # the last 2 read
    assert sizes == [4, 4, 16, 35, 80, 2]


def test_publishing_thread_keeps_order_and_reports_a_lost_broker(redis_server, queue) -> None:
    from db.schema import Job as JobRow
    from emotion_batch.messages import ImageRef
    from producer.publish import Enqueuer

    settings = Settings(_env_file=None)
    job = JobRow(id=7, backend="cnn", force=False)
    sender = Enqueuer(make_client(settings, redis_server.url), job, queue, 4, background=True)
    try:
        for start in range(0, 40, 10):
            sender.add(ImageRef(i, f"/p/{i}.jpg") for i in range(start, start + 10))
        sender.flush()
    finally:
        sender.close()
    assert sender.batches == 10 and sender.queued == 40
    newest_first = [i for first in range(36, -1, -4) for i in range(first, first + 4)]  # LPUSH
    assert queued_ids(redis_server.url, queue) == newest_first

    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"
    client = make_client(settings, dead)
    client.conf.broker_connection_max_retries = 0
    client.conf.broker_transport_options = {"max_retries": 0}
    lost = Enqueuer(client, job, queue, 4, background=True)
    try:
        lost.add(ImageRef(i, f"/p/{i}.jpg") for i in range(8))
        with pytest.raises(Exception):  # noqa: B017 (kombu's or redis's connection error)
            lost.flush()
    finally:
        lost.close()
    assert lost.batches == 0
