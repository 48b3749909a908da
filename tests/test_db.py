"""Database writes and report arithmetic on a real SQLite file (schema from Alembic)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.jobs import create_job, job_progress, pending_refs, register_images, reset_failed
from db.migrate import upgrade
from db.reports import job_report
from db.results import ResultKey, claim_attempt, reusable, store_results
from db.schema import Face, Image
from db.session import make_session_factory
from emotion_batch.detect import FaceBox
from emotion_batch.pipeline import FaceResult, ImageResult
from emotion_batch.scan import ScannedFile
from models.labels import EMOTIONS


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
        assert register_images(s, job, files) == (n, 1)
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
        report = job_report(s, job, by_folder=True)
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
        for other in (ResultKey("cnn", "v", "haar-0f7d4527844eb514"), ResultKey("cnn", "w", KEY.detector),
                      ResultKey("deepface", "v", KEY.detector)):
            assert reusable(s, shas, other) == {}


def test_attempts_are_counted_and_exhausted(sessions) -> None:
    job, ids = _job(sessions, n=2)
    with sessions() as s:
        for attempt in range(3):
            claim = claim_attempt(s, ids, max_attempts=3)
            assert sorted(claim.live) == ids and claim.exhausted == []
        claim = claim_attempt(s, ids, max_attempts=3)
        assert claim.live == {} and sorted(claim.exhausted) == ids
        progress = job_progress(s, job)
        assert progress.failed == 2 and progress.complete
        assert reset_failed(s, job) == 2
        assert job_progress(s, job).pending == 2
