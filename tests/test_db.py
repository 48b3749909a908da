"""Database writes and report arithmetic on a real SQLite file (schema from Alembic)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.jobs import create_job, job_progress, pending_refs, reset_failed
from db.migrate import upgrade
from db.records import ScannedFile
from db.registration import register_chunk
from db.reports import job_report
from db.results import ResultKey, claim_attempt, reusable, store_results
from db.schema import Face, Image
from db.session import make_session_factory
from emotion_batch.detect import FaceBox
from emotion_batch.labels import EMOTIONS
from emotion_batch.pipeline import FaceResult, ImageResult


@pytest.fixture
def sessions(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 't.db'}"
    upgrade(url)
    upgrade(url)  # idempotent
    return make_session_factory(url)


def _face(dominant: str, share: float = 70.0) -> FaceResult:
    rest = (100.0 - share) / 6
    emotions = {e: (share if e == dominant else rest) for e in EMOTIONS}
    return FaceResult(FaceBox(1, 2, 30, 40, 0.9), emotions, dominant)


def _job(sessions, n: int = 4, folder: str = "/p"):
    files = [ScannedFile(f"{folder}/{i}.jpg", folder, f"{i:064x}", 10, None) for i in range(n)]
    files.append(files[0])  # same content twice: one row
    with sessions() as s:
        job = create_job(s, "t", "cnn", 2, [folder], False)
        added = register_chunk(s, job.id, files, len(files))
        assert (len(added.pending), added.duplicates) == (n, 1)
        return job.id, [r.image_id for r in pending_refs(s, job.id)]


def test_report_arithmetic(sessions) -> None:
    job, ids = _job(sessions)
    results = {
        ids[0]: ImageResult("a", faces=(_face("happy", 80), _face("sad", 60))),
        ids[1]: ImageResult("b", faces=(_face("happy", 50),)),
        ids[2]: ImageResult("c"),
        ids[3]: ImageResult("d", error="not an image"),
    }
    with sessions() as s:
        assert store_results(s, results, ResultKey("cnn", "cnn-x", "yunet-x")) == 4
        report = job_report(s, job, by="folder")
    assert (report["images"], report["faces"], report["no_face"], report["failed"]) == (4, 3, 1, 1)
    assert report["dominant"]["happy"] == 2 and report["dominant"]["sad"] == 1
    assert report["share"]["happy"] == pytest.approx(200 / 3)
    assert report["mean"]["happy"] == pytest.approx((80 + 40 / 6 + 50) / 3)
    assert sum(report["mean"].values()) == pytest.approx(100.0)
    assert report["folders"]["/p"]["faces"] == 3 and report["model_versions"] == ["cnn-x"]


KEY = ResultKey("cnn", "v", "yunet-8f2383e4dd3cfbb4")


def test_redelivered_batch_is_not_counted_twice(sessions) -> None:
    job, ids = _job(sessions, n=2)
    results = {ids[0]: ImageResult("a", faces=(_face("fear"),)), ids[1]: ImageResult("b")}
    with sessions() as s:
        assert store_results(s, results, KEY) == 2
        assert store_results(s, results, KEY) == 0
        assert s.scalar(select(func.count(Face.id))) == 1
        progress = job_progress(s, job)
    assert progress.complete and progress.done == 1 and progress.no_face == 1 and progress.faces == 1


def test_reuse_needs_the_same_backend_model_and_detector(sessions) -> None:
    job, ids = _job(sessions, n=2)
    results = {ids[0]: ImageResult("a", faces=(_face("fear"),)), ids[1]: ImageResult("b")}
    with sessions() as s:
        store_results(s, results, KEY)
        shas = [s.get(Image, i).sha256 for i in ids]
        assert set(reusable(s, shas, KEY)) == set(shas)
        stored = s.get(Image, ids[0])
        assert stored.detector == KEY.detector and stored.faces[0].detector == KEY.detector
        for other in (
            ResultKey("cnn", "v", "haar-0f7d4527844eb514"),
            ResultKey("cnn", "w", KEY.detector),
            ResultKey("deepface", "v", KEY.detector),
        ):
            assert reusable(s, shas, other) == {}


def test_attempts_are_counted_and_exhausted(sessions) -> None:
    job, ids = _job(sessions, n=2)
    with sessions() as s:
        for _attempt in range(3):
            claim = claim_attempt(s, ids, max_attempts=3)
            assert sorted(claim.live) == ids and claim.exhausted == []
        claim = claim_attempt(s, ids, max_attempts=3)
        assert claim.live == {} and sorted(claim.exhausted) == ids
        progress = job_progress(s, job)
        assert progress.failed == 2 and progress.complete
        assert reset_failed(s, job) == 2
        assert job_progress(s, job).pending == 2


def _many(sessions, n: int, folder: str = "/m") -> tuple[int, list[int]]:
    files = [ScannedFile(f"{folder}/{i}.jpg", folder, f"{i:064x}", 10, None) for i in range(n)]
    with sessions() as s:
        job = create_job(s, "many", "cnn", 32, [folder], False)
        register_chunk(s, job.id, files, len(files))
        return job.id, [r.image_id for r in pending_refs(s, job.id)]


def test_queries_over_more_ids_than_sqlite_variables(sessions) -> None:
    """SQLite allows 32,766 variables per statement: every list of ids is chunked."""
    from db.results import fail_images, pending_attempts, reusable

    job, ids = _many(sessions, 40_000)
    with sessions() as s:
        assert len(pending_attempts(s, ids, job)) == 40_000
        claim = claim_attempt(s, ids, max_attempts=3, job_id=job, owner="t1", lease_seconds=60)
        assert len(claim.live) == 40_000
        assert reusable(s, [f"{i:064x}" for i in range(40_000)], KEY) == {}
        assert fail_images(s, ids, "test") == 40_000
        assert job_progress(s, job).failed == 40_000


def test_claims_touch_only_the_named_job(sessions) -> None:
    job_a, ids_a = _job(sessions, n=2)
    job_b, _ = _job(sessions, n=2, folder="/q")
    with sessions() as s:
        claim = claim_attempt(s, ids_a, max_attempts=3, job_id=job_b)
        assert claim.live == {} and claim.exhausted == []
        assert job_progress(s, job_a).pending == 2


def test_a_busy_image_is_left_to_its_delivery(sessions) -> None:
    """A concurrent `resume` delivery neither counts an attempt nor fails a leased image;
    a redelivery of the same task takes it over; an expired lease can be taken."""
    from db.schema import Image

    job, ids = _job(sessions, n=2)
    with sessions() as s:
        first = claim_attempt(s, ids, max_attempts=1, job_id=job, owner="job1-batch0", lease_seconds=300)
        assert sorted(first.live) == ids
        for other in ("job1-batch123", "job1-batch124"):
            claim = claim_attempt(s, ids, max_attempts=1, job_id=job, owner=other, lease_seconds=300)
            assert claim.live == {} and claim.exhausted == [] and sorted(claim.busy) == ids
        assert job_progress(s, job).pending == 2
        assert [s.get(Image, i).attempts for i in ids] == [1, 1]
        again = claim_attempt(s, ids, max_attempts=2, job_id=job, owner="job1-batch0", lease_seconds=300)
        assert sorted(again.live) == ids  # the same task redelivered (its process died)
        s.query(Image).update({Image.lease_until: 0.0})
        s.commit()
        taken = claim_attempt(s, ids, max_attempts=3, job_id=job, owner="job1-batch125", lease_seconds=300)
        assert sorted(taken.live) == ids


def test_a_changed_file_is_stored_under_the_hash_of_what_was_analysed(sessions) -> None:
    from db.results import reusable
    from db.schema import Image

    job, ids = _job(sessions, n=3)
    with sessions() as s:
        submitted = {i: s.get(Image, i).sha256 for i in ids}
    new = "f" * 64
    results = {
        ids[0]: ImageResult("a", sha256=new),  # replaced by new content (no face)
        ids[1]: ImageResult("b", faces=(_face("happy"),), sha256=submitted[ids[2]]),  # now a copy of c
        ids[2]: ImageResult("c", faces=(_face("sad"),), sha256=submitted[ids[2]]),
    }
    with sessions() as s:
        assert store_results(s, results, KEY, submitted=submitted) == 3
        a, b, c = (s.get(Image, i) for i in ids)
        assert (a.sha256, a.submitted_sha256, a.status) == (new, submitted[ids[0]], "no_face")
        assert b.status == "failed" and "changed after submit" in b.error and b.face_count == 0
        assert (c.sha256, c.submitted_sha256, c.status) == (submitted[ids[2]], None, "done")
        # Reuse follows what was analysed: the old content of `a` has no stored result.
        assert submitted[ids[0]] not in reusable(s, [submitted[ids[0]], new], KEY)
        assert reusable(s, [new], KEY)[new].id == ids[0]


def test_staged_date_times_are_stored_as_the_column_stores_them() -> None:
    """The stage formats SQLite date-times itself (a third of the bind processor's time):
    it must write exactly what the DateTime column writes, or the (path, size, mtime)
    look-up of an unchanged file would never match."""
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import DateTime
    from sqlalchemy.dialects import sqlite

    from db.stage import datetime_param

    dialect = sqlite.dialect()
    column = DateTime(timezone=True).dialect_impl(dialect).bind_processor(dialect)
    fast = datetime_param(dialect)
    assert column is not None and fast is not None
    for moment in (
        datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=timezone.utc),
        datetime(1999, 1, 1, tzinfo=timezone.utc),
        datetime.fromtimestamp(1_700_000_000.25, timezone(timedelta(hours=2))),
        datetime(2024, 5, 6, 7, 8, 9, 10),
    ):
        assert fast(moment) == column(moment)


def test_stage_fill_splits_many_rows_into_multi_row_inserts(sessions) -> None:
    """A stage takes more rows than one SQLite statement may bind (a 20,000-file chunk of
    an unchanged re-run): they go as several multi-row INSERTs, every value intact."""
    from datetime import datetime, timezone

    from sqlalchemy import text

    from db.known import _FOUND
    from db.stage import ROWS_PER_INSERT, fill, time_param

    odd = ["/p/line\nbreak.jpg", "/p/café ☕.jpg", "/p/'quote\".jpg"]
    with sessions() as session:
        when = time_param(session)
        moment = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)
        rows = [
            (i, odd[i % 3] + str(i), i * 7, when(moment) if i % 2 else None) for i in range(2 * ROWS_PER_INSERT + 345)
        ]
        fill(session, _FOUND, rows)
        back = session.execute(text("SELECT seq, path, size_bytes, file_mtime FROM register_found ORDER BY seq")).all()
        assert [tuple(r) for r in back] == rows
        fill(session, _FOUND, rows[:3])  # emptied before each fill
        assert session.execute(text("SELECT count(*) FROM register_found")).scalar() == 3
