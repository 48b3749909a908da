"""The real CLI's terminal output piped at 80 columns (COLUMNS=80): the report by folder
shows all seven emotions, and no line of the report or the status breaks a figure from
its unit; a real SQLite file holds a job with every outcome, long folder names included."""

from __future__ import annotations

import re
from pathlib import Path

from db.jobs import create_job, pending_refs
from db.migrate import upgrade
from db.records import ScannedFile
from db.registration import register_chunk
from db.results import ResultKey, store_results
from db.session import make_session_factory
from emotion_batch.detect import FaceBox
from emotion_batch.labels import EMOTIONS
from emotion_batch.pipeline import FaceResult, ImageResult
from tests.conftest import run_producer

FOLDERS = ("/photos/2024/summer-holidays-in-the-mountains", "/photos/2024/grandmother-birthday-party-at-home")


def face(dominant: str) -> FaceResult:
    return FaceResult(FaceBox(1, 2, 30, 40, 0.9), {e: 70.0 if e == dominant else 5.0 for e in EMOTIONS}, dominant)


def every_outcome(url: str) -> int:
    """Per folder: 1,000 images finished with faces of every emotion, one without a face,
    one failed and one still pending, so every count column is shown."""
    upgrade(url)
    files = [
        ScannedFile(f"{folder}/{n}.jpg", folder, f"{i:02d}{n:062d}", 10, None)
        for i, folder in enumerate(FOLDERS)
        for n in range(1003)
    ]
    with make_session_factory(url)() as session:
        job = create_job(session, "holidays", "cnn", 32, ["/photos"], False)
        register_chunk(session, job.id, files, len(files))
        refs = pending_refs(session, job.id)
        results = {}
        for n, ref in enumerate(refs):
            k = n % 1003
            if k == 1002:
                continue  # pending
            faces = (face(EMOTIONS[k % 7]),) if k < 1000 else ()
            results[ref.image_id] = ImageResult(str(n), "not an image" if k == 1001 else None, 100, 80, None, faces)
        store_results(session, results, ResultKey("cnn", "cnn-test", "yunet-test"))
        return job.id


def test_report_and_status_fit_80_columns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wide.db'}"
    job = every_outcome(url)
    env = {"DATABASE_URL": url, "COLUMNS": "80"}
    report = run_producer(env, "report", str(job), "--by", "folder")
    assert report.returncode == 0, report.stderr
    lines = report.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, report.stdout
    header = next(line for line in lines if "group" in line).split()
    assert header[-7:] == ["ang", "dis", "fea", "hap", "sad", "sur", "neu"], report.stdout
    assert header[1:7] == ["images", "no", "face", "failed", "pending", "faces"]
    rows = [line.split() for line in lines if line.strip().startswith(("(all)", "summer", "grandmother"))]
    assert len(rows) == 3 and all(row[-7:] == ["14"] * 6 + ["14"] for row in rows), report.stdout
    assert re.search(r"mean % over the job's faces: angry 14\.3,\s+disgust", report.stdout), report.stdout
    assert all(re.search(rf"{e} 14\.\d", report.stdout) for e in EMOTIONS), report.stdout  # never "sad\n14.3"
    status = run_producer(env, "status", str(job))
    assert status.returncode == 0, status.stderr
    status_lines = status.stdout.splitlines()
    assert max(len(line) for line in status_lines) <= 80, status.stdout
    assert all(not re.match(r"\s*(images/s|faces|ETA)\b", line) for line in status_lines), status.stdout
    assert f"job {job}: 2004/2006 finished (done 2000, no face 2, failed 2, pending 2), 2000 faces, " in " ".join(
        status_lines
    )
