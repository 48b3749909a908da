"""The streaming submit sharing earlier jobs' rows, against a real redis-server and real
SQLite / PostgreSQL databases: an unchanged re-run shares the earlier rows (and every
reader shows them), shared rows count for duplicates, resume and the changed-file check,
and folders are shared whole only when every row can be."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.jobs import job_progress
from db.reports import job_report
from db.results import ResultKey, store_results
from db.schema import Face, Image, Job
from emotion_batch.broker import make_client
from emotion_batch.config import Settings
from emotion_batch.paths import from_db, to_db
from emotion_batch.pipeline import ImageResult
from producer.render import report_json
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


def _table_count(sessions, table) -> int:  # noqa: ANN001 (a mapped class)
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def _same(a, b, drop=("job", "name")) -> None:
    assert {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}


def _assert_readers_agree(sessions, first_id: int, second_id: int, faces: int) -> Image:
    """Every database reader shows the sharing job as the first one; returns a shared
    image with faces."""
    from db.faces import face_page, faces_per_image, image_faces, job_face, top_faces
    from db.frames import job_frames
    from db.reports import report_rows
    from producer.outputs import charts_for

    with sessions() as session:
        progress = job_progress(session, second_id)
        assert progress.complete and progress.total == 30 and progress.faces == faces
        assert progress.done == faces and progress.no_face == 30 - faces
        for by in ("job", "folder", "date", ("folder", "date")):
            report1, report2 = job_report(session, first_id, by=by), job_report(session, second_id, by=by)
            _same(report1, report2)
            assert report2["job"] == second_id and report2["images"] == 30 and report2["faces"] == faces
            rows1, rows2 = report_rows(report1), report_rows(report2)
            assert [{**r, "job": 0} for r in rows1] == [{**r, "job": 0} for r in rows2]
        frames1, frames2 = job_frames(session, first_id), job_frames(session, second_id)
        assert set(frames2.images["job_id"]) == {second_id} and len(frames2.images) == 30
        assert frames1.images.drop(columns="job_id").equals(frames2.images.drop(columns="job_id"))
        assert frames1.faces.equals(frames2.faces) and len(frames2.faces) == faces
        assert top_faces(session, second_id) == top_faces(session, first_id)
        assert list(faces_per_image(session, second_id)) == list(faces_per_image(session, first_id))
        assert list(faces_per_image(session, second_id, limit=3)) == list(faces_per_image(session, first_id, limit=3))
        page1, page2 = face_page(session, first_id), face_page(session, second_id)
        assert page2.total == page1.total == faces and page2.faces == page1.faces
        shared = next(r for r in member_rows(sessions, second_id) if r.face_count)
        found = image_faces(session, second_id, shared.id)
        assert found is not None and len(found[1]) == shared.face_count
        assert job_face(session, second_id, found[1][0].image_id and page2.faces[0]["id"]) is not None
        assert image_faces(session, 999, shared.id) is None and job_face(session, 999, page2.faces[0]["id"]) is None
        charts = charts_for(session, second_id)
        assert charts and all(png.startswith(b"\x89PNG") for png in charts.values())
    return shared


def _assert_web_shows_shared_rows(
    sessions, database_url: str, redis_url: str, jobs: tuple[int, int], faces: int, shared: Image
) -> None:
    """The API and pages show the sharing job's status, report, faces and images."""
    from fastapi.testclient import TestClient

    from producer.web.app import create_app

    first_id, second_id = jobs
    web = Settings(_env_file=None, database_url=database_url, redis_url=redis_url, detector="haar")
    with TestClient(create_app(web), base_url="http://127.0.0.1") as http:
        status = http.get(f"/api/jobs/{second_id}").json()
        assert status["complete"] and status["done"] == faces and status["total"] == 30
        by_folder = http.get(f"/api/jobs/{second_id}/report", params={"by": "folder"}).json()
        assert by_folder["folders"] == job_report_folders(sessions, first_id)
        listed = http.get(f"/api/jobs/{second_id}/faces", params={"limit": 500}).json()
        assert listed["total"] == faces
        annotated = http.get(listed["faces"][0]["links"]["annotated"])
        assert annotated.status_code == 200 and annotated.content[:2] == b"\xff\xd8"
        page = http.get(f"/jobs/{second_id}/images/{shared.id}")
        assert page.status_code == 200
        csv_text = http.get(f"/api/jobs/{second_id}/report", params={"by": "folder", "format": "csv"}).text
        assert len(csv_text.strip().splitlines()) == 1 + 1 + 3  # header, (all), three folders
        html = http.get(f"/api/jobs/{second_id}/report", params={"format": "html"}).text
        assert "<html" in html.lower()


def test_unchanged_rerun_shares_the_earlier_rows_and_every_reader_shows_them(
    tmp_path, sessions, database_url, redis_server, queue
):
    from db.schema import JobImage
    from producer.resume import retry_failed

    root = tmp_path / "photos"
    jpeg_tree(root, 30)
    settings = settings_for(database_url, detector="haar", redis_url=redis_server.url)
    key = reuse_key("cnn", settings, force=False)
    client = make_client(settings, redis_server.url)
    kwargs = dict(backend="cnn", batch_size=8, force=False, queue=queue, settings=settings, chunk=7)
    first = submit(sessions, client, [root], SubmitOptions(name="first", **kwargs))
    faces = analyse_all(sessions, first.job_id, key)
    image_rows, face_rows = _table_count(sessions, Image), _table_count(sessions, Face)

    second = submit(sessions, client, [root], SubmitOptions(name="second", **kwargs))
    assert (second.found, second.read, second.queued, second.reused) == (30, 0, 0, 30)
    # no row of its own: the job shares job 1's 30 finished rows (the database does not grow by them)
    assert _table_count(sessions, Image) == image_rows and _table_count(sessions, Face) == face_rows
    assert _table_count(sessions, JobImage) == 30 and job_rows(sessions, second.job_id) == []
    first_ids = [r.id for r in job_rows(sessions, first.job_id)]
    assert [r.id for r in member_rows(sessions, second.job_id)] == first_ids
    assert sorted(queued_ids(redis_server.url, queue)) == first_ids  # the first's

    shared = _assert_readers_agree(sessions, first.job_id, second.job_id, faces)
    _assert_web_shows_shared_rows(
        sessions, database_url, redis_server.url, (first.job_id, second.job_id), faces, shared
    )

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
    paths = jpeg_tree(root, 45)
    settings = settings_for(database_url, detector="haar")
    key = reuse_key("cnn", settings, force=False)
    client = make_client(settings, redis_server.url)
    kwargs = dict(backend="cnn", batch_size=8, force=False, queue=queue, settings=settings, chunk=1)
    first = submit(sessions, client, [root], SubmitOptions(name="first", **kwargs))
    analyse_all(sessions, first.job_id, key)

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
        assert _table_count(sessions, JobImage) == 16 and len(job_rows(sessions, job.id)) == 1
    # the resumed walk starts inside f1: its first folder is not taken whole, f2 is
    resumed = resume_job(sessions, client, job.id, queue, settings=settings)
    assert resumed.scan is not None and resumed.scan.scanned == 46 - 17
    members = member_rows(sessions, job.id)
    own = job_rows(sessions, job.id)
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
    row = job_rows(sessions, job.id)[0]
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
    paths = jpeg_tree(root, 30)  # f0, f1, f2: 10 files each
    settings = settings_for(database_url, detector="haar")
    key = reuse_key("cnn", settings, force=False)
    client = make_client(settings, redis_server.url)
    kwargs = dict(backend="cnn", batch_size=8, force=False, queue=queue, settings=settings, chunk=7)
    first = submit(sessions, client, [root], SubmitOptions(name="first", **kwargs))
    assert _recorded(sessions, first.job_id) == {"f0", "f1", "f2"}
    analyse_all(sessions, first.job_id, key)
    first_rows = job_rows(sessions, first.job_id)

    # unchanged: every folder shared whole (nothing recorded, nothing read or queued)
    second = submit(sessions, client, [root], SubmitOptions(name="second", **kwargs))
    assert (second.found, second.read, second.queued, second.reused, second.duplicates) == (30, 0, 0, 30, 0)
    assert _recorded(sessions, second.job_id) == set()
    assert [m.id for m in member_rows(sessions, second.job_id)] == [r.id for r in first_rows]

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
    own = job_rows(sessions, third.job_id)
    assert sorted(Path(from_db(r.path)).name for r in own) == sorted([paths[1].name, Path(failed.path).name])
    members = member_rows(sessions, third.job_id)
    assert len(members) == 30 and len({m.path for m in members}) == 30 and len({m.sha256 for m in members}) == 30
    with sessions() as session:
        shared = session.scalar(select(func.count()).select_from(JobImage).where(JobImage.job_id == third.job_id))
        progress = job_progress(session, third.job_id)
    assert shared == 28 and (progress.total, progress.pending) == (30, 2)

    # f1 and f2 analysed in job 3 now: the next run shares f0 from job 1, f1 and f2 from job 3
    analyse_all(sessions, third.job_id, key)
    fourth = submit(sessions, client, [root], SubmitOptions(name="fourth", **kwargs))
    assert (fourth.found, fourth.read, fourth.queued, fourth.reused) == (30, 0, 0, 30)
    assert _recorded(sessions, fourth.job_id) == set()
    assert {m.path for m in member_rows(sessions, fourth.job_id)} == {to_db(str(p)) for p in paths}

    # another result key (--force analyses again): nothing shared, every folder recorded again
    forced = submit(sessions, client, [root], SubmitOptions(name="forced", **{**kwargs, "force": True}))
    assert (forced.read, forced.queued, forced.reused) == (0, 30, 0)
    assert _recorded(sessions, forced.job_id) == {"f0", "f1", "f2"}


def test_a_folder_holding_a_file_submitted_on_its_own_is_not_recorded(
    tmp_path, sessions, database_url, redis_server, queue
):
    from db.folders import recorded_under

    root = tmp_path / "photos"
    paths = jpeg_tree(root, 6)
    settings = settings_for(database_url, detector="haar")
    client = make_client(settings, redis_server.url)
    kwargs = dict(backend="cnn", batch_size=8, force=False, queue=queue, settings=settings)
    with sessions() as session:
        assert not recorded_under(session, [str(root)])
    first = submit(sessions, client, [paths[0], root], SubmitOptions(name="first", **kwargs))  # f0/000.jpg met twice
    assert (first.found, len(job_rows(sessions, first.job_id))) == (7, 6)
    assert _recorded(sessions, first.job_id) == {"f1", "f2"}
    with sessions() as session:
        assert recorded_under(session, [str(root)]) and recorded_under(session, [str(root / "f1")])
        assert not recorded_under(session, [str(root / "f0")]) and not recorded_under(session, [str(tmp_path / "ph")])


def test_folders_shared_from_two_jobs_keep_one_image_per_content(tmp_path, sessions, database_url, redis_server, queue):
    settings = settings_for(database_url, detector="haar")
    key = reuse_key("cnn", settings, force=False)
    client = make_client(settings, redis_server.url)
    kwargs = dict(backend="cnn", batch_size=8, force=False, queue=queue, settings=settings, chunk=50)
    x, y = tmp_path / "x", tmp_path / "y"
    for i in range(5):
        unique_jpeg(x / f"{i}.jpg", i)
        unique_jpeg(y / f"{i}.jpg", 100 + i)
    (y / "copy.jpg").write_bytes((x / "2.jpg").read_bytes())  # x/2.jpg's content, walked after it
    job_x = submit(sessions, client, [x], SubmitOptions(name="x", **kwargs))
    analyse_all(sessions, job_x.job_id, key)
    job_y = submit(sessions, client, [y], SubmitOptions(name="y", **kwargs))  # copy.jpg: x/2.jpg's result reused
    assert (job_y.found, job_y.reused, job_y.queued) == (6, 1, 5)
    analyse_all(sessions, job_y.job_id, key)

    # x from job x, y from job y: both whole
    both = submit(sessions, client, [x, y], SubmitOptions(name="both", **kwargs))
    assert (both.found, both.read, both.queued, both.duplicates) == (11, 0, 0, 1)
    assert _recorded(sessions, both.job_id) == set()
    members = member_rows(sessions, both.job_id)
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
