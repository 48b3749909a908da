"""The streaming submit against a real redis-server and real SQLite / PostgreSQL databases:
an interrupted submit completed by resume without duplicates, a second submit that reads
nothing and queues nothing, the per-job counters the progress reads, and the scan's edge
cases (sizes checked before hashing, names that are not UTF-8, broken links)."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from db.jobs import job_progress, reset_failed
from db.migrate import upgrade
from db.reports import job_report
from db.results import ResultKey, store_results
from db.schema import Face, Image, Job
from db.session import make_session_factory
from emotion_batch.broker import make_client
from emotion_batch.classify import expected_model_version
from emotion_batch.config import Settings
from emotion_batch.detect import FaceBox
from emotion_batch.errors import ConfigurationError
from emotion_batch.labels import EMOTIONS
from emotion_batch.paths import from_db, to_db
from emotion_batch.pipeline import FaceResult, ImageResult
from producer.render import report_json
from producer.resume import resume_job
from producer.reuse import reuse_key
from producer.submit import SubmitOptions, submit
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


def _jpeg(path: Path, index: int) -> None:
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


def _tree(root: Path, n: int = 45) -> list[Path]:
    paths = [root / f"f{i % 3}" / f"{i:03d}.jpg" for i in range(n)]
    for i, path in enumerate(paths):
        _jpeg(path, i)
    return paths


def _settings(url: str, **extra) -> Settings:
    return Settings(database_url=url, **extra)


def _rows(sessions, job_id: int) -> list[Image]:
    with sessions() as session:
        return list(session.scalars(select(Image).where(Image.job_id == job_id).order_by(Image.id)))


class Interrupt(KeyboardInterrupt):
    pass


def test_interrupted_submit_is_resumed_without_duplicates(tmp_path, sessions, database_url, redis_server, queue):
    root = tmp_path / "photos"
    paths = _tree(root)
    (root / "f2" / "copy.jpg").write_bytes(paths[0].read_bytes())  # same content: one row
    os.symlink(root / "gone.jpg", root / "f1" / "broken.jpg")
    client = make_client(_settings(database_url), redis_server.url)

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
    first_rows = _rows(sessions, job.id)
    assert progress.total == len(first_rows) == 20 and not progress.complete
    # each committed chunk was on the queue before the interruption (the 20 ids, 5 batches)
    assert sorted(queued_ids(redis_server.url, queue)) == [r.id for r in first_rows]

    resumed = resume_job(sessions, client, job.id, queue, settings=_settings(database_url))
    rows = _rows(sessions, job.id)
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


def _analyse_all(sessions, job_id: int, key: ResultKey) -> int:
    """Store a face for every pending image, as a worker would (db.results)."""
    faces = 0
    with sessions() as session:
        ids = [r.id for r in _rows(sessions, job_id) if r.status == "pending"]
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


def test_second_submit_reads_nothing_and_queues_nothing(tmp_path, sessions, database_url, redis_server, queue):
    root = tmp_path / "photos"
    paths = _tree(root, 30)
    settings = _settings(database_url, detector="haar")  # its file ships with OpenCV
    key = reuse_key("cnn", settings, force=False)
    assert key and key.model_version == expected_model_version("cnn", settings)
    client = make_client(settings, redis_server.url)
    kwargs = dict(backend="cnn", batch_size=8, force=False, queue=queue, settings=settings, chunk=7)
    first = submit(sessions, client, [root], SubmitOptions(name="first", **kwargs))
    assert (first.found, first.read, first.queued, first.reused) == (30, 30, 30, 0)
    faces = _analyse_all(sessions, first.job_id, key)
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
    assert _rows(sessions, second.job_id) == [] and len(_members(sessions, second.job_id)) == 30  # shared rows

    changed = paths[3]
    changed.write_bytes(changed.read_bytes() + b"\0")  # new size and mtime: read again
    third = submit(sessions, client, [root], SubmitOptions(name="third", **kwargs))
    assert (third.read, third.queued, third.reused) == (1, 1, 29)
    forced = submit(sessions, client, [root], SubmitOptions(name="rehash", rehash=True, **kwargs))
    # read again, results still reused; the changed file, still pending in the third job,
    # is not queued again but follows that image (db.followers)
    assert (forced.read, forced.queued, forced.reused) == (30, 0, 30)


def test_counters_follow_every_status_change(sessions, tmp_path, database_url, redis_server, queue):
    paths = _tree(tmp_path / "photos", 40)
    (tmp_path / "photos" / "bad.jpg").write_text("not an image")
    client = make_client(_settings(database_url), redis_server.url)
    options = SubmitOptions(backend="cnn", batch_size=8, name="c", force=False, queue=queue)
    result = submit(sessions, client, [tmp_path / "photos"], options)
    ids = [r.id for r in _rows(sessions, result.job_id)]
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
    _tree(tmp_path / "p", 3)
    client = make_client(_settings(database_url), redis_server.url)
    for size in (0, -5, 1025):
        with pytest.raises(ConfigurationError, match="between 1 and 1024"):
            options = SubmitOptions(backend="cnn", batch_size=size, name="x", force=False, queue=queue)
            submit(sessions, client, [tmp_path / "p"], options)
    with sessions() as session:
        assert session.scalar(select(func.count(Job.id))) == 0


def test_size_checked_before_hashing_and_odd_names_kept(sessions, database_url, tmp_path, redis_server, queue):
    root = tmp_path / "p"
    _tree(root, 3)
    huge = root / "huge.jpg"
    with open(huge, "wb") as handle:
        handle.truncate(20 * 1024**3)  # 20 GB, sparse: never read
    odd = os.fsdecode(bytes(root) + b"/caf\xe9-\xff.jpg")
    _jpeg(Path(odd), 99)
    settings = _settings(database_url, max_file_bytes=10_000_000)
    client = make_client(settings, redis_server.url)
    started = time.monotonic()
    options = SubmitOptions(backend="cnn", batch_size=8, name="odd", force=False, queue=queue, settings=settings)
    result = submit(sessions, client, [root], options)
    assert time.monotonic() - started < 10
    rows = {r.path: r for r in _rows(sessions, result.job_id)}
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


def _members(sessions, job_id: int) -> list[Image]:
    """The job's images as every reader sees them: its own rows and the ones it shares."""
    from db.members import in_job

    with sessions() as session:
        return list(session.scalars(select(Image).where(in_job(job_id)).order_by(Image.id)))


def _table_count(sessions, table) -> int:  # noqa: ANN001 (a mapped class)
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def test_unchanged_rerun_shares_the_earlier_rows_and_every_reader_shows_them(
    tmp_path, sessions, database_url, redis_server, queue
):
    from fastapi.testclient import TestClient

    from db.faces import face_page, faces_per_image, image_faces, job_face, top_faces
    from db.frames import job_frames
    from db.reports import report_rows
    from db.schema import JobImage
    from producer.outputs import charts_for
    from producer.resume import retry_failed
    from producer.web.app import create_app

    root = tmp_path / "photos"
    _tree(root, 30)
    settings = _settings(database_url, detector="haar", redis_url=redis_server.url)
    key = reuse_key("cnn", settings, force=False)
    client = make_client(settings, redis_server.url)
    kwargs = dict(backend="cnn", batch_size=8, force=False, queue=queue, settings=settings, chunk=7)
    first = submit(sessions, client, [root], SubmitOptions(name="first", **kwargs))
    faces = _analyse_all(sessions, first.job_id, key)
    image_rows, face_rows = _table_count(sessions, Image), _table_count(sessions, Face)

    second = submit(sessions, client, [root], SubmitOptions(name="second", **kwargs))
    assert (second.found, second.read, second.queued, second.reused) == (30, 0, 0, 30)
    # no row of its own: the job shares job 1's 30 finished rows (the database does not grow by them)
    assert _table_count(sessions, Image) == image_rows and _table_count(sessions, Face) == face_rows
    assert _table_count(sessions, JobImage) == 30 and _rows(sessions, second.job_id) == []
    assert [r.id for r in _members(sessions, second.job_id)] == [r.id for r in _rows(sessions, first.job_id)]
    assert sorted(queued_ids(redis_server.url, queue)) == [r.id for r in _rows(sessions, first.job_id)]  # the first's

    def same(a, b, drop=("job", "name")) -> None:
        assert {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}

    with sessions() as session:
        progress = job_progress(session, second.job_id)
        assert progress.complete and progress.total == 30 and progress.faces == faces
        assert progress.done == faces and progress.no_face == 30 - faces
        for by in ("job", "folder", "date", ("folder", "date")):
            report1, report2 = job_report(session, first.job_id, by=by), job_report(session, second.job_id, by=by)
            same(report1, report2)
            assert report2["job"] == second.job_id and report2["images"] == 30 and report2["faces"] == faces
            rows1, rows2 = report_rows(report1), report_rows(report2)
            assert [{**r, "job": 0} for r in rows1] == [{**r, "job": 0} for r in rows2]
        frames1, frames2 = job_frames(session, first.job_id), job_frames(session, second.job_id)
        assert set(frames2.images["job_id"]) == {second.job_id} and len(frames2.images) == 30
        assert frames1.images.drop(columns="job_id").equals(frames2.images.drop(columns="job_id"))
        assert frames1.faces.equals(frames2.faces) and len(frames2.faces) == faces
        assert top_faces(session, second.job_id) == top_faces(session, first.job_id)
        assert list(faces_per_image(session, second.job_id)) == list(faces_per_image(session, first.job_id))
        assert list(faces_per_image(session, second.job_id, limit=3)) == list(
            faces_per_image(session, first.job_id, limit=3)
        )
        page1, page2 = face_page(session, first.job_id), face_page(session, second.job_id)
        assert page2.total == page1.total == faces and page2.faces == page1.faces
        shared = next(r for r in _members(sessions, second.job_id) if r.face_count)
        found = image_faces(session, second.job_id, shared.id)
        assert found is not None and len(found[1]) == shared.face_count
        assert job_face(session, second.job_id, found[1][0].image_id and page2.faces[0]["id"]) is not None
        assert image_faces(session, 999, shared.id) is None and job_face(session, 999, page2.faces[0]["id"]) is None
        charts = charts_for(session, second.job_id)
        assert charts and all(png.startswith(b"\x89PNG") for png in charts.values())

    web = Settings(_env_file=None, database_url=database_url, redis_url=redis_server.url, detector="haar")
    with TestClient(create_app(web), base_url="http://127.0.0.1") as http:
        status = http.get(f"/api/jobs/{second.job_id}").json()
        assert status["complete"] and status["done"] == faces and status["total"] == 30
        by_folder = http.get(f"/api/jobs/{second.job_id}/report", params={"by": "folder"}).json()
        assert by_folder["folders"] == job_report_folders(sessions, first.job_id)
        listed = http.get(f"/api/jobs/{second.job_id}/faces", params={"limit": 500}).json()
        assert listed["total"] == faces
        annotated = http.get(listed["faces"][0]["links"]["annotated"])
        assert annotated.status_code == 200 and annotated.content[:2] == b"\xff\xd8"
        page = http.get(f"/jobs/{second.job_id}/images/{shared.id}")
        assert page.status_code == 200
        csv_text = http.get(f"/api/jobs/{second.job_id}/report", params={"by": "folder", "format": "csv"}).text
        assert len(csv_text.strip().splitlines()) == 1 + 1 + 3  # header, (all), three folders
        html = http.get(f"/api/jobs/{second.job_id}/report", params={"format": "html"}).text
        assert "<html" in html.lower()

    # nothing of job 1 is pending or failed: resume and retry-failed have nothing to send
    assert resume_job(sessions, client, second.job_id, queue, settings=settings).batches == 0
    assert retry_failed(sessions, client, second.job_id, queue, settings=settings) == (0, 0)
    third = submit(sessions, client, [root], SubmitOptions(name="third", **kwargs))
    assert (third.read, third.queued, third.reused) == (0, 0, 30)
    assert _table_count(sessions, Image) == image_rows and _table_count(sessions, JobImage) == 60


def job_report_folders(sessions, job_id: int) -> dict:
    with sessions() as session:
        return json.loads(report_json(job_report(session, job_id, by="folder")))["folders"]  # as the API rounds


def test_shared_rows_count_for_duplicates_resume_and_the_changed_file_check(
    tmp_path, sessions, database_url, redis_server, queue
):
    from db.schema import JobImage

    root = tmp_path / "photos"
    paths = _tree(root, 45)
    settings = _settings(database_url, detector="haar")
    key = reuse_key("cnn", settings, force=False)
    client = make_client(settings, redis_server.url)
    kwargs = dict(backend="cnn", batch_size=8, force=False, queue=queue, settings=settings, chunk=1)
    first = submit(sessions, client, [root], SubmitOptions(name="first", **kwargs))
    _analyse_all(sessions, first.job_id, key)

    # a copy of a shared file under a new path, walked after it: a duplicate of the job's shared image
    (root / "zz").mkdir()
    (root / "zz" / "copy.jpg").write_bytes(paths[0].read_bytes())
    changed = paths[4]
    changed.write_bytes(changed.read_bytes() + b"\0")  # read again and queued

    chunks: list[int] = []

    def stop_after_one_chunk(progress) -> None:
        # f0 is unchanged: shared whole (15 units of 20); f1's first file shared, its
        # second (the changed one, 20 units) read: the chunk closes inside f1
        chunks.append(progress.scanned)
        raise Interrupt

    with pytest.raises(Interrupt):
        submit(sessions, client, [root], SubmitOptions(name="second", **kwargs), on_progress=stop_after_one_chunk)
    with sessions() as session:
        job = session.scalars(select(Job).order_by(Job.id.desc())).first()
        assert not job.scan_complete and job.scanned == chunks[0] == 15 + 2
        assert _table_count(sessions, JobImage) == 16 and len(_rows(sessions, job.id)) == 1
    # the resumed walk starts inside f1: its first folder is not taken whole, f2 is
    resumed = resume_job(sessions, client, job.id, queue, settings=settings)
    assert resumed.scan is not None and resumed.scan.scanned == 46 - 17
    members = _members(sessions, job.id)
    own = _rows(sessions, job.id)
    with sessions() as session:
        job = session.get(Job, job.id)
        progress = job_progress(session, job.id)
        shared = session.scalar(select(func.count()).select_from(JobImage).where(JobImage.job_id == job.id))
    assert job.duplicates == 1 and job.scan_complete
    assert len(members) == 45 and len({m.sha256 for m in members}) == 45 and len({m.path for m in members}) == 45
    assert [Path(r.path) for r in own] == [changed] and own[0].status == "pending" and shared == 44
    assert (progress.total, progress.pending) == (45, 1) and progress.done + progress.no_face == 44

    # the changed file's worker finds it now holds a shared image's content: failed as changed, not counted twice
    twin = next(m for m in members if m.job_id == first.job_id)
    with sessions() as session:
        result = ImageResult(str(changed), None, 16, 16, None, (), sha256=twin.sha256)
        store_results(session, {own[0].id: result}, key, submitted={own[0].id: own[0].sha256})
    row = _rows(sessions, job.id)[0]
    assert row.status == "failed" and f"image {twin.id} of this job" in row.error


def _recorded(sessions, job_id: int) -> set[str]:
    """Names of the folders `job_id` recorded as walked whole (its files registered one by one)."""
    from db.schema import FolderScan

    with sessions() as session:
        folders = session.scalars(select(FolderScan.folder).where(FolderScan.job_id == job_id))
        return {Path(from_db(f)).name for f in folders}


def test_unchanged_folders_are_shared_whole_only_when_every_row_can_be(
    tmp_path, sessions, database_url, redis_server, queue
):
    from db.schema import JobImage

    root = tmp_path / "photos"
    paths = _tree(root, 30)  # f0, f1, f2: 10 files each
    settings = _settings(database_url, detector="haar")
    key = reuse_key("cnn", settings, force=False)
    client = make_client(settings, redis_server.url)
    kwargs = dict(backend="cnn", batch_size=8, force=False, queue=queue, settings=settings, chunk=7)
    first = submit(sessions, client, [root], SubmitOptions(name="first", **kwargs))
    assert _recorded(sessions, first.job_id) == {"f0", "f1", "f2"}
    _analyse_all(sessions, first.job_id, key)
    first_rows = _rows(sessions, first.job_id)

    # unchanged: every folder shared whole (nothing recorded, nothing read or queued)
    second = submit(sessions, client, [root], SubmitOptions(name="second", **kwargs))
    assert (second.found, second.read, second.queued, second.reused, second.duplicates) == (30, 0, 0, 30, 0)
    assert _recorded(sessions, second.job_id) == set()
    assert [m.id for m in _members(sessions, second.job_id)] == [r.id for r in first_rows]

    # a file of f1 changed, one image of f2 failed in job 1: both folders file by file
    paths[1].write_bytes(paths[1].read_bytes() + b"\0")
    failed = next(r for r in first_rows if Path(from_db(r.path)).parent.name == "f2")
    with sessions() as session:
        row = session.get(Image, failed.id)
        row.status, row.attempts, row.error = "failed", 1, "worker error"  # as a worker fails it
        session.commit()
    third = submit(sessions, client, [root], SubmitOptions(name="third", **kwargs))
    assert _recorded(sessions, third.job_id) == {"f1", "f2"}
    assert (third.found, third.read, third.queued, third.reused) == (30, 1, 2, 28)
    own = _rows(sessions, third.job_id)
    assert sorted(Path(from_db(r.path)).name for r in own) == sorted([paths[1].name, Path(failed.path).name])
    members = _members(sessions, third.job_id)
    assert len(members) == 30 and len({m.path for m in members}) == 30 and len({m.sha256 for m in members}) == 30
    with sessions() as session:
        shared = session.scalar(select(func.count()).select_from(JobImage).where(JobImage.job_id == third.job_id))
        progress = job_progress(session, third.job_id)
    assert shared == 28 and (progress.total, progress.pending) == (30, 2)

    # f1 and f2 analysed in job 3 now: the next run shares f0 from job 1, f1 and f2 from job 3
    _analyse_all(sessions, third.job_id, key)
    fourth = submit(sessions, client, [root], SubmitOptions(name="fourth", **kwargs))
    assert (fourth.found, fourth.read, fourth.queued, fourth.reused) == (30, 0, 0, 30)
    assert _recorded(sessions, fourth.job_id) == set()
    assert {m.path for m in _members(sessions, fourth.job_id)} == {to_db(str(p)) for p in paths}

    # another result key (--force analyses again): nothing shared, every folder recorded again
    forced = submit(sessions, client, [root], SubmitOptions(name="forced", **{**kwargs, "force": True}))
    assert (forced.read, forced.queued, forced.reused) == (0, 30, 0)
    assert _recorded(sessions, forced.job_id) == {"f0", "f1", "f2"}


def test_a_folder_holding_a_file_submitted_on_its_own_is_not_recorded(
    tmp_path, sessions, database_url, redis_server, queue
):
    from db.folders import recorded_under

    root = tmp_path / "photos"
    paths = _tree(root, 6)
    settings = _settings(database_url, detector="haar")
    client = make_client(settings, redis_server.url)
    kwargs = dict(backend="cnn", batch_size=8, force=False, queue=queue, settings=settings)
    with sessions() as session:
        assert not recorded_under(session, [str(root)])
    first = submit(sessions, client, [paths[0], root], SubmitOptions(name="first", **kwargs))  # f0/000.jpg met twice
    assert (first.found, len(_rows(sessions, first.job_id))) == (7, 6)
    assert _recorded(sessions, first.job_id) == {"f1", "f2"}
    with sessions() as session:
        assert recorded_under(session, [str(root)]) and recorded_under(session, [str(root / "f1")])
        assert not recorded_under(session, [str(root / "f0")]) and not recorded_under(session, [str(tmp_path / "ph")])


def test_folders_shared_from_two_jobs_keep_one_image_per_content(tmp_path, sessions, database_url, redis_server, queue):
    settings = _settings(database_url, detector="haar")
    key = reuse_key("cnn", settings, force=False)
    client = make_client(settings, redis_server.url)
    kwargs = dict(backend="cnn", batch_size=8, force=False, queue=queue, settings=settings, chunk=50)
    x, y = tmp_path / "x", tmp_path / "y"
    for i in range(5):
        _jpeg(x / f"{i}.jpg", i)
        _jpeg(y / f"{i}.jpg", 100 + i)
    (y / "copy.jpg").write_bytes((x / "2.jpg").read_bytes())  # x/2.jpg's content, walked after it
    job_x = submit(sessions, client, [x], SubmitOptions(name="x", **kwargs))
    _analyse_all(sessions, job_x.job_id, key)
    job_y = submit(sessions, client, [y], SubmitOptions(name="y", **kwargs))  # copy.jpg: x/2.jpg's result reused
    assert (job_y.found, job_y.reused, job_y.queued) == (6, 1, 5)
    _analyse_all(sessions, job_y.job_id, key)

    # x from job x, y from job y: both whole
    both = submit(sessions, client, [x, y], SubmitOptions(name="both", **kwargs))
    assert (both.found, both.read, both.queued, both.duplicates) == (11, 0, 0, 1)
    assert _recorded(sessions, both.job_id) == set()
    members = _members(sessions, both.job_id)
    assert len(members) == 10 and len({m.sha256 for m in members}) == 10
    assert to_db(str(x / "2.jpg")) in {m.path for m in members}  # the first place in the walk stays
    with sessions() as session:
        job = session.get(Job, both.job_id)
        progress = job_progress(session, both.job_id)
    assert job.duplicates == 1 and job.scanned == 11 and progress.total == 10 and progress.complete


def test_a_folder_whose_rows_went_missing_is_not_shared(tmp_path, sessions, database_url) -> None:
    """Rows found unchanged but gone when shared (an earlier job deleted meanwhile): the
    chunk is not committed, and the error says to resume."""
    from db.jobs import create_job
    from db.records import ScannedFolder
    from db.registration import register_chunk
    from emotion_batch.errors import SharedFolderChangedError

    key = ResultKey("cnn", "v", "d")
    with sessions() as session:
        job = create_job(session, "j", "cnn", 8, [str(tmp_path)], False, scanning=True)
        folder = ScannedFolder(str(tmp_path / "gone"), 3, "0" * 64, shared_from=job.id)
        with pytest.raises(SharedFolderChangedError, match=f"resume job {job.id} "):
            register_chunk(session, job.id, [folder], 3, key)
        session.rollback()
        assert session.get(Job, job.id).scanned == 0 and job_progress(session, job.id).total == 0


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
