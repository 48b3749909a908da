"""Migrations, reports by job / folder / date and the notebook DataFrames, on a real
SQLite file and on a fresh real PostgreSQL database (skipped locally without
TEST_POSTGRES_URL, failing under CI=true)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import inspect

from db.faces import faces_per_image, top_faces
from db.frames import job_frames, load_job_frames
from db.jobs import create_job, pending_refs
from db.migrate import upgrade
from db.records import ScannedFile
from db.registration import register_chunk
from db.reports import job_report
from db.results import ResultKey, store_results
from db.session import make_engine, make_session_factory
from emotion_batch.detect import FaceBox
from emotion_batch.labels import EMOTIONS
from emotion_batch.pipeline import FaceResult, ImageResult
from tests.conftest import database_for

JULY = datetime(2024, 7, 4, 10, 30, tzinfo=timezone.utc)
AUGUST = datetime(2024, 8, 1, 9, 0, tzinfo=timezone.utc)
EXIF_DAY = datetime(2019, 5, 17, 23, 10)  # EXIF times carry no zone


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path):
    yield from database_for(request.param, request, tmp_path)


def _face(dominant: str, share: float = 70.0) -> FaceResult:
    rest = (100.0 - share) / 6
    return FaceResult(FaceBox(1, 2, 30, 40, 0.9), {e: share if e == dominant else rest for e in EMOTIONS}, dominant)


def _job(url: str) -> int:
    """Four images in two folders; one with an EXIF date, one with no date at all."""
    files = [
        ScannedFile("/p/a/1.jpg", "/p/a", "1" * 64, 10, JULY),
        ScannedFile("/p/a/2.jpg", "/p/a", "2" * 64, 10, JULY),
        ScannedFile("/p/b/3.jpg", "/p/b", "3" * 64, 10, AUGUST),
        ScannedFile("/p/b/4.jpg", "/p/b", "4" * 64, 10, None),
    ]
    sessions = make_session_factory(url)
    with sessions() as s:
        job = create_job(s, "t", "cnn", 2, ["/p"], False)
        register_chunk(s, job.id, files, len(files))
        ids = [r.image_id for r in pending_refs(s, job.id)]
        results = {
            ids[0]: ImageResult("1", None, 100, 80, None, (_face("happy", 80), _face("sad"))),
            ids[1]: ImageResult("2", None, 100, 80, EXIF_DAY, (_face("happy", 60),)),
            ids[2]: ImageResult("3", None, 100, 80, None, ()),
            ids[3]: ImageResult("4", error="not an image"),
        }
        store_results(s, results, ResultKey("cnn", "cnn-test", "yunet-test"))
        return job.id


def test_migrations_create_the_tables(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)  # idempotent
    inspector = inspect(make_engine(database_url))
    assert {"jobs", "images", "faces", "alembic_version"} <= set(inspector.get_table_names())
    assert {c["name"] for c in inspector.get_columns("images")} >= {"taken_at", "file_mtime", "folder"}
    uniques = {u["name"] for u in inspector.get_unique_constraints("faces")}
    assert "uq_faces_image_index" in uniques


def test_report_by_date_prefers_the_capture_date(database_url: str) -> None:
    upgrade(database_url)
    job = _job(database_url)
    with make_session_factory(database_url)() as s:
        report = job_report(s, job, by="date")
    dates = report["dates"]
    assert list(dates) == ["2019-05-17", "2024-07-04", "2024-08-01", "unknown"]
    assert (dates["2019-05-17"]["images"], dates["2019-05-17"]["faces"]) == (1, 1)
    assert dates["2024-07-04"]["dominant"]["happy"] == 1 and dates["2024-07-04"]["dominant"]["sad"] == 1
    assert dates["2024-08-01"]["no_face"] == 1 and dates["unknown"]["failed"] == 1
    assert sum(d["faces"] for d in dates.values()) == report["faces"] == 3
    assert "folders" not in report


def test_report_by_folder_and_job_keys_are_stable(database_url: str) -> None:
    upgrade(database_url)
    job = _job(database_url)
    with make_session_factory(database_url)() as s:
        report = job_report(s, job, by="folder")
    assert {
        "job",
        "name",
        "backend",
        "images",
        "faces",
        "no_face",
        "failed",
        "pending",
        "dominant",
        "share",
        "mean",
        "model_versions",
        "detectors",
        "folders",
        "video",
    } == set(report)
    assert report["folders"]["/p/a"]["faces"] == 3 and report["folders"]["/p/b"]["faces"] == 0
    assert report["model_versions"] == ["cnn-test"] and report["detectors"] == ["yunet-test"]


def test_job_frames(database_url: str) -> None:
    upgrade(database_url)
    job = _job(database_url)
    frames = load_job_frames(database_url, job)
    assert len(frames.images) == 4 and len(frames.faces) == 3
    assert set(frames.images["status"]) == {"done", "no_face", "failed"}
    assert frames.faces["dominant"].value_counts().to_dict() == {"happy": 2, "sad": 1}
    sums = frames.faces[list(EMOTIONS)].sum(axis=1)
    assert sums.round(6).eq(100.0).all()
    assert set(frames.faces["folder"]) == {"/p/a"}
    days = frames.images.set_index("path")["date"]
    assert days["/p/a/2.jpg"].date().isoformat() == "2019-05-17"
    assert days["/p/b/3.jpg"].date().isoformat() == "2024-08-01"
    assert days.isna().sum() == 1
    with make_session_factory(database_url)() as s:
        empty = job_frames(s, job + 100)
    assert empty.images.empty and empty.faces.empty


def test_face_reads_for_pictures(database_url: str) -> None:
    upgrade(database_url)
    job = _job(database_url)
    with make_session_factory(database_url)() as s:
        top = top_faces(s, job, per_emotion=1)
        per_image = list(faces_per_image(s, job))
        first_only = list(faces_per_image(s, job, limit=1))
    assert [(f.dominant, f.percent) for f in top] == [("happy", pytest.approx(80.0)), ("sad", pytest.approx(70.0))]
    assert [(Path(p).name, len(faces)) for p, faces in per_image] == [("1.jpg", 2), ("2.jpg", 1)]
    assert [Path(p).name for p, _ in first_only] == ["1.jpg"]
    assert (per_image[0][1][0].x, per_image[0][1][0].w) == (1, 30)


def test_one_flattening_for_csv_parquet_and_table(database_url: str, tmp_path: Path) -> None:
    """CSV and Parquet hold the same columns, in the same order, with the same values:
    both are `report_rows` of the one report (`by` both folder and date in one call)."""
    import io

    import pandas as pd
    from rich.console import Console

    from db.reports import REPORT_COLUMNS, report_rows
    from producer.render import report_csv, report_table
    from producer.report_files import write_parquet

    upgrade(database_url)
    job = _job(database_url)
    with make_session_factory(database_url)() as s:
        report = job_report(s, job, by=("folder", "date"))
    rows = report_rows(report)
    assert [(r["by"], r["group"]) for r in rows] == [
        ("job", "(all)"),
        ("folder", "/p/a"),
        ("folder", "/p/b"),
        ("date", "2019-05-17"),
        ("date", "2024-07-04"),
        ("date", "2024-08-01"),
        ("date", "unknown"),
    ]
    everything = rows[0]
    assert (everything["images"], everything["faces"], everything["no_face"], everything["failed"]) == (4, 3, 1, 1)
    assert everything["dominant_happy"] == 2 and everything["share_happy"] == round(200 / 3, 2)
    assert everything["mean_happy"] == round((80 + 5 + 60) / 3, 2)  # sad face: (100-70)/6 = 5 happy
    write_parquet(report, tmp_path / "r.parquet")
    from_parquet = pd.read_parquet(tmp_path / "r.parquet")
    from_csv = pd.read_csv(io.StringIO(report_csv(report)), keep_default_na=False)
    assert list(from_csv.columns) == list(from_parquet.columns) == list(REPORT_COLUMNS)
    for column in REPORT_COLUMNS:
        assert list(from_csv[column]) == list(from_parquet[column]) == [r[column] for r in rows], column
    table = Console(file=io.StringIO(), width=200)
    report_table(report, table)
    text = table.file.getvalue()
    assert "happy 48.3" in text and "unknown" in text  # the job's mean %, and the date groups
