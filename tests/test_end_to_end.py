"""The whole system with real parts: producer CLI -> redis-server -> Celery worker
process -> database -> report. Run for both backends, on SQLite and on PostgreSQL
(a fresh database per test; skipped locally without TEST_POSTGRES_URL, failing in CI)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.members import in_job
from db.schema import Face, Image, face_owner
from db.session import make_session_factory
from emotion_batch.labels import EMOTIONS
from producer.local import LocalWorker
from tests.conftest import database_for, run_producer
from tests.corpus import write_bad_corpus, write_crowd, write_odd_formats

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path):
    """Every test here runs once per database kind (overrides conftest's SQLite-only one)."""
    yield from database_for(request.param, request, tmp_path)


@pytest.fixture
def photo_tree(tmp_path: Path, photos_dir: Path) -> tuple[Path, dict]:
    """Real photos, a duplicate, odd encodings and the bad-input corpus in one tree."""
    root = tmp_path / "photos"
    shutil.copytree(photos_dir, root / "real")
    shutil.copy(photos_dir / "img1.jpg", root / "real" / "img1-copy.jpg")
    bad = write_bad_corpus(root / "bad", photos_dir / "img1.jpg")
    write_odd_formats(root / "odd", photos_dir / "img12.jpg")
    (root / "crowd").mkdir()
    write_crowd(root / "crowd" / "crowd.jpg", sorted(photos_dir.glob("img*.jpg")))
    (root / "README.txt").write_text("not an image, not registered")
    return root, bad


@pytest.fixture
def running_worker(tmp_path: Path, redis_server, worker_env: dict[str, str]):
    env = {**worker_env, "REDIS_URL": redis_server.url}
    worker = LocalWorker(env, concurrency=1, name=f"e2e-{tmp_path.name}", log_file=tmp_path / "worker.log")
    with worker:
        yield env, worker


def _images(url: str, job: int) -> dict[str, Image]:
    """The job's images as every reader sees them: its own rows and the ones it shares."""
    with make_session_factory(url)() as session:
        rows = session.scalars(select(Image).where(in_job(job))).all()
        for row in rows:
            _ = list(row.faces)
        return {str(Path(r.path)): r for r in rows}


def _check_faces(images: dict, backend: str) -> None:
    """Every stored face: a box inside its image, percentages summing to 100, the dominant
    one the largest, the backend, model and detector that analysed it."""
    for row in images.values():
        for face in row.faces:
            assert 0 <= face.x and 0 <= face.y and face.w > 10 and face.h > 10
            assert face.x + face.w <= row.width and face.y + face.h <= row.height
            assert sum(getattr(face, e) for e in EMOTIONS) == pytest.approx(100.0, abs=1e-6)
            assert face.dominant == max(EMOTIONS, key=lambda e: getattr(face, e))
            assert face.backend == backend and face.model_version.startswith(
                backend if backend == "cnn" else "deepface-emotion-"
            )
            assert 0.0 <= face.confidence <= 1.0
            assert face.detector == row.detector and row.detector.startswith("yunet-")


def _check_report(env: dict[str, str], job: int, images: dict) -> tuple[dict, int]:
    """The job's JSON report adds up to the stored rows; returns it and the face count."""
    report = run_producer(env, "report", str(job), "--format", "json")
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    faces_total = sum(len(r.faces) for r in images.values())
    assert data["job"] == job and data["images"] == len(images) and data["faces"] == faces_total
    assert data["no_face"] == sum(r.status == "no_face" for r in images.values())
    assert data["failed"] == sum(r.status == "failed" for r in images.values())
    assert sum(data["dominant"].values()) == faces_total
    assert sum(data["mean"].values()) == pytest.approx(100.0, abs=0.04)  # seven means to two decimals
    return data, faces_total


@pytest.mark.parametrize("backend", ["deepface", "cnn"])
def test_submit_wait_report_resubmit(backend: str, photo_tree, running_worker, tmp_path: Path) -> None:
    root, bad = photo_tree
    env, _ = running_worker
    first = run_producer(
        env, "submit", str(root), "--backend", backend, "--batch-size", "8", "--wait", "--timeout", "400"
    )
    assert first.returncode == 0, first.stderr + (tmp_path / "worker.log").read_text()[-3000:]
    job = int(first.stdout.strip().splitlines()[-1])
    assert "1 duplicate skipped" in first.stderr

    images = _images(env["DATABASE_URL"], job)
    real = {p: i for p, i in images.items() if "/real/" in p}
    assert len(real) == 33 - 1  # 32 photos + 1 byte-identical copy, registered once
    assert all(i.status in ("done", "no_face", "failed") for i in images.values())
    assert sum(i.status == "done" for i in real.values()) >= 30
    for name, (status, reason) in bad.items():
        row = images[str(root / "bad" / name)]
        assert row.status == status, (name, row.status, row.error)
        if reason:
            assert reason in (row.error or ""), (name, row.error)
    for path, row in images.items():
        if "/odd/" in path:
            assert row.status == "done", (path, row.error)
    couple = real[str(root / "real" / "couple.jpg")]
    assert couple.face_count == 2
    assert real[str(root / "real" / "selfie-many-people.jpg")].face_count >= 5
    assert images[str(root / "crowd" / "crowd.jpg")].face_count >= 20
    _check_faces(images, backend)

    data, faces_total = _check_report(env, job, images)

    again = run_producer(env, "submit", str(root), "--backend", backend, "--wait", "--timeout", "300")
    assert again.returncode == 0, again.stderr
    job2 = int(again.stdout.strip().splitlines()[-1])
    second = _images(env["DATABASE_URL"], job2)
    assert {Path(p).name: r.status for p, r in second.items()} == {Path(p).name: r.status for p, r in images.items()}
    analysed = [r for r in second.values() if r.status in ("done", "no_face")]
    # unchanged files analysed before: the second job shares the first job's rows as they are
    assert analysed and all(r.job_id == job for r in analysed)
    assert all(r.job_id == job2 for r in second.values() if r.status == "failed")  # tried again
    with make_session_factory(env["DATABASE_URL"])() as session:
        per_image = session.execute(
            select(Face.image_id, Face.face_index, func.count())
            .group_by(Face.image_id, Face.face_index)
            .having(func.count() > 1)
        ).all()
        assert per_image == []
        # reused at submit time: the second job shows the first job's face rows (not copies)
        assert (
            session.scalar(select(func.count(Face.id)).join(Image, Face.image_id == face_owner()).where(in_job(job2)))
            == faces_total
        )
        assert session.scalar(select(func.count(Face.id))) == faces_total
    assert f"{len(analysed)} results reused" in again.stderr
    report2 = json.loads(run_producer(env, "report", str(job2), "--format", "json").stdout)
    assert (report2["faces"], report2["dominant"]) == (data["faces"], data["dominant"])
