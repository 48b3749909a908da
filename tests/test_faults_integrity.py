"""No wrong answer, no stuck job (issue 13), with real processes: a file changed between
submit and analysis, hostile messages, a database read-only for a while, `resume` while
a job is in flight, a database that cannot be reached.

Runs on the fault suite's `System`: a private redis-server, SQLite file and real Celery
worker processes per test.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import redis
from PIL import Image

from db.jobs import pending_refs
from emotion_batch.broker import make_client, send_batch
from emotion_batch.config import Settings
from emotion_batch.messages import BATCH_SIZE_MAX, BatchMessage
from tests.faults_support import JobProbe, kill_pool_children, make_photo_set, read_only, wait_until
from tests.test_faults import System, _assert_clean, system  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.faults, pytest.mark.integration]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_changed_file_is_analysed_as_read_and_its_result_never_reused_for_the_old_content(
    system: System, photos_dir: Path
) -> None:
    face = (photos_dir / "img1.jpg").read_bytes()
    first = system.tmp / "first"
    first.mkdir()
    (first / "photo.jpg").write_bytes(face)
    shutil.copy(photos_dir / "img12.jpg", first / "other.jpg")
    job1 = system.submit(first)
    # Replaced between submit and analysis by a photo without a face.
    Image.fromarray(np.full((480, 640), 128, np.uint8)).save(first / "photo.jpg")
    grey = (first / "photo.jpg").read_bytes()
    system.worker()
    probe1 = JobProbe(system.env["DATABASE_URL"], job1)
    assert wait_until(lambda: probe1.finished() == 2, 180), system.logs()[-3000:]
    changed = probe1.image("photo.jpg")
    assert changed.status == "no_face"
    assert (changed.sha256, changed.submitted_sha256) == (_sha(grey), _sha(face))  # recorded as changed

    second = system.tmp / "second"
    second.mkdir()
    (second / "again.jpg").write_bytes(face)  # the content photo.jpg had at submit
    (second / "grey.jpg").write_bytes(grey)  # the content actually analysed
    job2 = system.submit(second)
    probe2 = JobProbe(system.env["DATABASE_URL"], job2)
    assert wait_until(lambda: probe2.finished() == 2, 180), system.logs()[-3000:]
    again = probe2.image("again.jpg")
    assert again.reused_from is None and again.status == "done" and again.face_count >= 1
    assert again.width == Image.open(photos_dir / "img1.jpg").width
    reused = probe2.image("grey.jpg")
    assert reused.reused_from == changed.id and reused.status == "no_face"
    _assert_clean(probe1)
    _assert_clean(probe2)


def test_oversized_and_foreign_job_messages_are_refused(system: System, photos_dir: Path) -> None:
    make_photo_set(photos_dir, system.tmp / "a", 8)
    job_a = system.submit(system.tmp / "a")
    redis.Redis.from_url(system.redis.url).flushall()  # job a's batches are gone: it stays pending
    make_photo_set(photos_dir, system.tmp / "b", 8, max_side=400)
    job_b = system.submit(system.tmp / "b")
    probe_a, probe_b = JobProbe(system.env["DATABASE_URL"], job_a), JobProbe(system.env["DATABASE_URL"], job_b)
    with probe_a.sessions() as s:
        refs_a = tuple(pending_refs(s, job_a))
    client = make_client(Settings(_env_file=None), system.redis.url)
    # Job b's id on job a's images; then more images than a batch may hold.
    send_batch(client, BatchMessage(job_b, 900, "deepface", refs_a), "emotion")
    oversized = refs_a * (BATCH_SIZE_MAX // len(refs_a) + 1)
    send_batch(client, BatchMessage(job_b, 901, "deepface", oversized), "emotion")
    system.worker()
    assert wait_until(lambda: probe_b.finished() == 8, 180), system.logs()[-3000:]
    assert wait_until(lambda: f"more than the {BATCH_SIZE_MAX} a batch may hold" in system.logs(), 60)
    assert wait_until(lambda: f"job {job_b} batch 900:" in system.logs(), 60), system.logs()[-3000:]
    assert probe_a.statuses() == {"pending": 8} and probe_a.in_flight() == 0  # untouched
    _assert_clean(probe_b)


def test_worker_recovers_by_itself_after_the_database_was_read_only(system: System, photos_dir: Path) -> None:
    make_photo_set(photos_dir, system.tmp / "photos", 64)
    job = system.submit(system.tmp / "photos", "--batch-size", "8")
    worker = system.worker()
    probe = JobProbe(system.env["DATABASE_URL"], job)
    assert wait_until(lambda: probe.finished() >= 8, 180), system.logs()[-3000:]
    files = [system.db_path, *(system.db_path.with_name(system.db_path.name + s) for s in ("-wal", "-shm"))]
    with read_only(files):
        # The pool process dies and its replacement opens the database while it is read-only.
        assert kill_pool_children(worker.process.pid)
        assert wait_until(lambda: "readonly" in system.logs() or "unable to open" in system.logs(), 180), system.logs()[
            -3000:
        ]
        time.sleep(5)  # read-only a while longer, while the batch backs off
    assert wait_until(lambda: probe.finished() == 64, 240), system.logs()[-3000:]
    assert worker.alive()  # no restart needed
    assert probe.statuses().get("failed", 0) == 0
    _assert_clean(probe)


def test_resume_while_a_job_is_in_flight_leaves_busy_images_alone(system: System, photos_dir: Path) -> None:
    from producer.resume import resume

    shutil.copytree(photos_dir, system.tmp / "photos")
    # Two processes; one attempt per image: a second delivery that counted an attempt on a
    # busy image would fail it at once as "gave up".
    system.worker(
        concurrency=2, MAX_ATTEMPTS="1", DECODE_MAX_SIDE="4000", DETECT_MAX_SIDE="2600", DETECT_FIRST_SIDE="0"
    )
    assert wait_until(lambda: len(set(re.findall(r"worker process (\d+) ready", system.logs()))) == 2, 240), (
        system.logs()[-3000:]
    )
    job = system.submit(system.tmp / "photos", "--batch-size", "32")
    probe = JobProbe(system.env["DATABASE_URL"], job)
    assert wait_until(lambda: probe.in_flight() > 0, 60, 0.01), system.logs()[-3000:]
    client = make_client(Settings(_env_file=None), system.redis.url)
    assert resume(probe.sessions, client, job, "emotion") == 1  # what `producer resume` sends
    total = probe.audit()["submitted"]
    assert wait_until(lambda: probe.finished() == total, 300), system.logs()[-3000:]
    assert wait_until(lambda: system.logs().count(f"job {job} batch") >= 2, 60)
    assert probe.statuses().get("failed", 0) == 0, probe.statuses()
    assert "gave up" not in system.logs()
    assert re.search(r"busy=[1-9]", system.logs())  # one delivery found the images busy
    _assert_clean(probe)


def test_unreachable_database_is_said_clearly(system: System, tmp_path: Path, photos_dir: Path) -> None:
    url = f"sqlite:///{tmp_path / 'no-such-folder' / 'x.db'}"
    (tmp_path / "photos").mkdir()
    shutil.copy(photos_dir / "img12.jpg", tmp_path / "photos")
    for args in (("submit", str(tmp_path / "photos")), ("status", "1")):
        result = system.producer(*args, DATABASE_URL=url)
        assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
        assert sum(line.startswith("Error: ") for line in result.stderr.splitlines()) == 1, result.stderr
    submit = system.producer("submit", str(tmp_path / "photos"), DATABASE_URL=url)
    assert "cannot use the database" in submit.stderr and "does not exist" in submit.stderr, submit.stderr
    system.worker(DATABASE_URL=url)
    assert wait_until(lambda: "cannot reach its database" in system.logs(), 180), system.logs()[-3000:]
    assert "does not exist" in system.logs()


def test_bad_batch_size_in_the_environment_is_one_line(system: System) -> None:
    result = system.producer("status", "1", BATCH_SIZE="5000")
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "BATCH_SIZE" in result.stderr and "1024" in result.stderr
