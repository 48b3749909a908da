"""What a new user meets in the first hour, against real parts: `producer run` on the
user's own folder (no sample photos written), a missing path or an empty folder (one line,
non-zero exit from the commands that wait), the submit summary's wording, `status`
defaulting to the latest job, `resume` on a finished job, and an empty job on the web."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from db.migrate import upgrade
from emotion_batch.config import Settings
from emotion_batch.defaults import REPO_ROOT
from producer.web.app import create_app
from tests.conftest import database_for, need, run_producer


def run_cli(env: dict[str, str], cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """The real `producer` CLI in `cwd` (the user's working folder), without REDIS_URL."""
    base = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    return subprocess.run(
        [sys.executable, "-m", "producer.cli", *args],
        cwd=cwd,
        env={**base, **env, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Error")]


@pytest.fixture
def queue_env(redis_server, tmp_path: Path) -> dict[str, str]:
    """A real redis-server with this test's own queue and SQLite file (no worker)."""
    return {
        "REDIS_URL": redis_server.url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "QUEUE": f"q-{uuid.uuid4().hex[:8]}",
    }


def test_run_of_a_missing_path_is_one_line_and_starts_nothing(tmp_path: Path) -> None:
    done = run_cli({"DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}"}, tmp_path, "run", str(tmp_path / "nope"))
    assert done.returncode == 1
    assert error_lines(done.stderr) == [f"Error: not found: {tmp_path / 'nope'}"], done.stderr
    assert "started" not in done.stderr and not (tmp_path / ".emotion-batch").exists()
    assert not (tmp_path / "sample-photos").exists() and not (tmp_path / "run.db").exists()


def test_submit_of_an_empty_folder_says_so_and_wait_fails(queue_env: dict[str, str], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a photo")
    plain = run_producer(queue_env, "submit", str(empty))
    assert plain.returncode == 0, plain.stderr  # the job id is still printed for scripts
    assert f"no images found under {empty}" in plain.stderr
    waited = run_producer(queue_env, "submit", str(empty), "--wait", "--timeout", "60")
    assert waited.returncode == 1
    assert error_lines(waited.stderr) == [f"Error: no images found under {empty}"], waited.stderr
    assert "100%" not in waited.stderr


def test_summary_status_of_the_latest_job_and_resume_of_a_finished_one(
    queue_env: dict[str, str], photos_dir: Path, tmp_path: Path
) -> None:
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(photos_dir / "img1.jpg", one)
    submitted = run_producer(queue_env, "submit", str(one))
    assert submitted.returncode == 0, submitted.stderr
    summary = " ".join(submitted.stderr.split())
    assert "1 image found" in summary and "1 queued in 1 batch," in summary and "0 results reused" in summary
    first = int(submitted.stdout.split()[-1])
    empty = tmp_path / "empty"
    empty.mkdir()
    second = int(run_producer(queue_env, "submit", str(empty)).stdout.split()[-1])
    latest = run_producer(queue_env, "status")  # no job id: the latest job, as `report`
    assert latest.returncode == 0, latest.stderr
    assert latest.stdout.startswith(f"job {second}: 0/0 finished")
    assert run_producer(queue_env, "status", str(first)).stdout.startswith(f"job {first}: 0/1 finished")
    resumed = run_producer(queue_env, "resume", str(second))
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.strip() == f"job {second}: finished, nothing to resume"  # no empty progress bars


def test_an_empty_job_shows_as_empty_on_the_web(redis_server, tmp_path: Path) -> None:
    library = tmp_path / "library"
    (library / "empty").mkdir(parents=True)
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite:///{tmp_path / 'web.db'}",
        redis_url=redis_server.url,
        queue=f"q-{uuid.uuid4().hex[:8]}",
        upload_root=tmp_path / "uploads",
        allowed_roots=[library],
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        created = client.post("/api/jobs", json={"paths": [str(library / "empty")]})
        assert created.status_code == 202, created.text
        job = created.json()["job"]
        deadline = time.monotonic() + 30
        while not (status := client.get(f"/api/jobs/{job}").json())["complete"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status["complete"] and status["empty"] and status["percent"] == 0.0, status
        page = client.get(f"/jobs/{job}").text
        assert 'id="state" class="tag idle">empty<' in page and "finished</span>" not in page
        assert f"No images found under {library / 'empty'}." in page
        assert 'class="tag idle">empty<' in client.get("/").text


@pytest.mark.integration
def test_run_on_a_named_folder_writes_no_sample_photos(
    worker_env: dict[str, str], photos_dir: Path, tmp_path: Path
) -> None:
    """The user's own folder under the working folder: only it is analysed, in the batch
    size asked for, and no sample-photos/ appears; an empty folder fails in one line."""
    need(shutil.which("redis-server") is not None, "redis-server")
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in ("img1.jpg", "img2.jpg"):
        shutil.copy(photos_dir / name, mine)
    env = {**worker_env, "WORKER_BACKENDS": '["cnn"]'}
    done = run_cli(env, tmp_path, "run", "mine", "--batch-size", "1", "--timeout", "400")
    log = tmp_path / ".emotion-batch" / "worker.log"
    assert done.returncode == 0, done.stderr[-3000:] + (log.read_text()[-3000:] if log.exists() else "")
    assert not (tmp_path / "sample-photos").exists() and "sample photos" not in done.stderr
    summary = " ".join(done.stderr.split())
    assert "2 images found" in summary and "2 queued in 2 batches" in summary
    assert "2/2 finished" in summary
    (tmp_path / "empty").mkdir()
    empty = run_cli(env, tmp_path, "run", "empty", "--timeout", "60")
    assert empty.returncode == 1 and error_lines(empty.stderr) == ["Error: no images found under empty"], empty.stderr
    assert not (tmp_path / "sample-photos").exists()


def test_broker_error_says_how_to_get_a_redis_and_invents_no_password(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    done = run_producer({"DATABASE_URL": url}, "submit", str(tmp_path / "p"), "--redis-url", "redis://127.0.0.1:1/0")
    assert done.returncode == 1
    [line] = error_lines(done.stderr)
    assert line.startswith("Error: cannot use the broker at redis://127.0.0.1:1/0: ") and ":**@" not in line
    assert "producer run" in line and "apt-get install redis-server" in line


def test_a_refused_password_is_masked_and_not_told_to_start_redis(tmp_path: Path) -> None:
    need(shutil.which("redis-server") is not None, "redis-server")
    from producer.local import LocalRedis

    (tmp_path / "p").mkdir()
    with LocalRedis(tmp_path / "redis", password="right") as server:
        wrong = f"redis://:wrong-secret@127.0.0.1:{server.port}/0"
        done = run_producer(
            {"DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"}, "submit", str(tmp_path / "p"), "--redis-url", wrong
        )
    [line] = error_lines(done.stderr)
    assert f"redis://:**@127.0.0.1:{server.port}/0" in line and "wrong-secret" not in line
    assert "producer run" not in line  # a Redis is there: starting another would not help


def test_json_percentages_are_rounded_and_every_file_written_is_named(tmp_path: Path) -> None:
    from tests.test_reports_db import _job

    url = f"sqlite:///{tmp_path / 'r.db'}"
    upgrade(url)
    job = _job(url)  # three faces: shares of 66.666...%
    env = {"DATABASE_URL": url}
    report = json.loads(run_producer(env, "report", str(job), "--by", "folder", "--format", "json").stdout)
    figures = [report["share"], report["mean"], *(g[k] for g in report["folders"].values() for k in ("share", "mean"))]
    assert report["share"]["happy"] == 66.67 and all(round(v, 2) == v for f in figures for v in f.values())
    for fmt in ("parquet", "json", "csv", "table", "html"):
        target = tmp_path / f"report.{fmt}"
        done = run_producer(env, "report", str(job), "--format", fmt, "--out", str(target))
        assert done.returncode == 0 and done.stderr.strip() == f"wrote {target}", (fmt, done.stderr)
        assert target.stat().st_size > 0 and done.stdout == ""


def test_html_report_lists_failed_images_with_their_reasons(tmp_path: Path) -> None:
    from tests.test_reports_db import _job

    url = f"sqlite:///{tmp_path / 'r.db'}"
    upgrade(url)
    job = _job(url)  # /p/b/4.jpg failed: "not an image"
    page = tmp_path / "report.html"
    done = run_producer({"DATABASE_URL": url}, "report", str(job), "--format", "html", "--out", str(page))
    assert done.returncode == 0, done.stderr
    html = page.read_text()
    assert "<h2>Failed images <span class='muted'>(1)</span></h2>" in html
    assert "<tr><td>/p/b/4.jpg</td><td>not an image</td></tr>" in html


@pytest.fixture(params=["sqlite", "postgresql"])
def any_database(request: pytest.FixtureRequest, tmp_path: Path):
    yield from database_for(request.param, request, tmp_path)


def test_a_one_day_job_is_charted_by_hour_on_that_day(any_database: str) -> None:
    from datetime import datetime, timezone

    from matplotlib import dates as mdates

    from db.jobs import create_job, pending_refs
    from db.records import ScannedFile
    from db.registration import register_chunk
    from db.results import ResultKey, store_results
    from db.session import make_session_factory
    from emotion_batch.pipeline import ImageResult
    from producer.charts import timeline_figure
    from producer.outputs import charts_for, full_report, hours_for
    from tests.test_terminal_width import face

    upgrade(any_database)
    times = [datetime(2026, 12, 5, h, 20, tzinfo=timezone.utc) for h in (9, 9, 14)]
    files = [ScannedFile(f"/p/{n}.jpg", "/p", f"{n}" * 64, 10, t) for n, t in enumerate(times)]
    with make_session_factory(any_database)() as session:
        job = create_job(session, "party", "cnn", 8, ["/p"], False)
        register_chunk(session, job.id, files, len(files))
        results = {
            ref.image_id: ImageResult(str(n), None, 100, 80, None, (face("happy" if n < 2 else "sad"),))
            for n, ref in enumerate(pending_refs(session, job.id))
        }
        store_results(session, results, ResultKey("cnn", "cnn-test", "yunet-test"))
        report = full_report(session, job.id)
        hours = hours_for(session, job.id, report)
        assert charts_for(session, job.id)["share-over-time.png"].startswith(b"\x89PNG")
    assert {h: g["faces"] for h, g in (hours or {}).items()} == {"2026-12-05 09": 2, "2026-12-05 14": 1}
    axes = timeline_figure(report["dates"], "t", hours).axes[0]
    start, end = (mdates.num2date(v).replace(tzinfo=None) for v in axes.get_xlim())
    assert (start, end) == (datetime(2026, 12, 5), datetime(2026, 12, 6))  # the day, not five years
    assert axes.get_xlabel() == "2026-12-05" and axes.get_ylabel() == "% of faces per hour"
    plotted = {mdates.num2date(x).hour for line in axes.get_lines() for x in mdates.date2num(line.get_xdata())}
    assert plotted == {9, 14}


def test_a_path_outside_the_allowed_roots_names_them_and_the_setting(tmp_path: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite:///{tmp_path / 'web.db'}",
        redis_url="redis://127.0.0.1:1/0",  # refused before the broker is asked
        upload_root=tmp_path / "uploads",
        allowed_roots=[library],
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        refused = client.post("/api/jobs", json={"paths": [str(tmp_path)]})
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert str(library) in error and str(tmp_path / "uploads") in error and "ALLOWED_ROOTS" in error, error


def test_readme_leads_with_what_it_does_and_the_everyday_commands() -> None:
    from click.testing import CliRunner

    from producer.cli import main

    text = (REPO_ROOT / "README.md").read_text()
    front = text[: text.index("\n## How it works")]
    assert len(front.splitlines()) <= 40  # one screen
    assert front.index("bash scripts/demo") < front.index("producer run ./photos") < front.index("serve --embedded")
    assert "bash scripts/test" in front and "66.5%" not in front  # accuracy history comes later
    assert "66.5%" in text[len(front) :]  # moved, not deleted
    assert "--embedded" in CliRunner().invoke(main, ["serve", "--help"]).output
    assert "--batch-size" in CliRunner().invoke(main, ["run", "--help"]).output
