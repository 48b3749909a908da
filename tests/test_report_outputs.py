"""Reports people look at, from one real job (producer CLI -> redis-server -> Celery
worker -> SQLite): by date / folder in JSON, CSV and Parquet, PNG charts, annotated
copies, the notebook DataFrames, and the HTML page rendered in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageOps

from db.frames import load_job_frames
from producer.local import LocalWorker
from tests.conftest import need, process_env, run_producer

pytestmark = pytest.mark.integration

FOLDERS = {
    "party": ["couple.jpg", "img1.jpg", "img2.jpg", "selfie-many-people.jpg"],
    "office": ["img3.jpg", "img4.jpg", "img5.jpg"],
}
MTIMES = {"party": datetime(2023, 12, 31, 22, 0), "office": datetime(2024, 3, 4, 9, 0)}
EXIF_TIME = "2020:06:21 14:30:00"  # on office/img5.jpg: its capture date wins over its mtime


def _photo_tree(root: Path, photos: Path) -> Path:
    for folder, names in FOLDERS.items():
        (root / folder).mkdir(parents=True)
        for name in names:
            target = root / folder / name
            with Image.open(photos / name) as image:  # re-saved without EXIF, but for img5
                upright = ImageOps.exif_transpose(image)
                exif = Image.Exif()
                if name == "img5.jpg":
                    exif.get_ifd(0x8769)[0x9003] = EXIF_TIME
                upright.save(target, exif=exif, quality=95)
            stamp = MTIMES[folder].timestamp()
            os.utime(target, (stamp, stamp))
    return root


@pytest.fixture(scope="module")
def job(tmp_path_factory, redis_server, photos_dir: Path, deepface_home: Path, yunet_model: Path):
    """One real job with the deepface backend; yields (env, job id, photo root)."""
    base = tmp_path_factory.mktemp("reports")
    root = _photo_tree(base / "photos", photos_dir)
    env = process_env(
        f"sqlite:///{base / 'emotion.db'}", deepface_home, yunet_model, ["deepface"], REDIS_URL=redis_server.url
    )
    with LocalWorker(env, name=f"reports-{base.name}", log_file=base / "worker.log"):
        done = run_producer(env, "submit", str(root), "--backend", "deepface", "--wait", "--timeout", "400")
    assert done.returncode == 0, done.stderr + (base / "worker.log").read_text()[-3000:]
    yield env, int(done.stdout.strip().splitlines()[-1]), root


def test_report_by_date_uses_capture_then_file_date(job) -> None:
    env, job_id, _ = job
    result = run_producer(env, "report", str(job_id), "--by", "date", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data["dates"]) == {"2020-06-21", "2023-12-31", "2024-03-04"}
    assert data["dates"]["2020-06-21"]["images"] == 1
    assert data["dates"]["2023-12-31"]["images"] == 4 and data["dates"]["2024-03-04"]["images"] == 2
    assert sum(d["faces"] for d in data["dates"].values()) == data["faces"] > 0


def test_report_csv_and_parquet_agree(job, tmp_path: Path) -> None:
    env, job_id, root = job
    csv = run_producer(
        env, "report", str(job_id), "--by", "folder", "--format", "csv", "--out", str(tmp_path / "r.csv")
    )
    parquet = run_producer(
        env, "report", str(job_id), "--by", "folder", "--format", "parquet", "--out", str(tmp_path / "r.parquet")
    )
    assert csv.returncode == 0 and parquet.returncode == 0, csv.stderr + parquet.stderr
    from_csv, from_parquet = pd.read_csv(tmp_path / "r.csv"), pd.read_parquet(tmp_path / "r.parquet")
    assert (
        list(from_parquet["group"]) == list(from_csv["group"]) == ["(all)", str(root / "office"), str(root / "party")]
    )
    assert list(from_parquet["faces"]) == list(from_csv["faces"])
    assert from_parquet.loc[0, "faces"] == from_parquet.loc[1:, "faces"].sum()
    assert run_producer(env, "report", str(job_id), "--format", "parquet").returncode != 0  # needs --out


def _distinct_colours(path: Path) -> int:
    with Image.open(path) as image:
        return len(np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0))


def test_charts_are_pngs_with_content(job, tmp_path: Path) -> None:
    env, job_id, _ = job
    result = run_producer(env, "chart", str(job_id), "--out", str(tmp_path / "charts"))
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (tmp_path / "charts").iterdir())
    assert names == ["emotions-by-folder.png", "share-over-time.png"]
    for name in names:
        with Image.open(tmp_path / "charts" / name) as image:
            assert image.format == "PNG" and image.width > 400 and image.height > 150
        assert _distinct_colours(tmp_path / "charts" / name) > 20


def test_annotated_copies_mirror_folders_and_mark_faces(job, tmp_path: Path) -> None:
    env, job_id, root = job
    result = run_producer(env, "annotate", str(job_id), "--out", str(tmp_path / "ann"))
    assert result.returncode == 0, result.stderr
    frames = load_job_frames(env["DATABASE_URL"], job_id)
    with_faces = frames.images[frames.images["face_count"] > 0]
    written = sorted(str(p.relative_to(tmp_path / "ann")) for p in (tmp_path / "ann").rglob("*.jpg"))
    assert written == sorted(str(Path(p).relative_to(root)) for p in with_faces["path"])
    couple = frames.faces[frames.faces["path"] == str(root / "party" / "couple.jpg")].iloc[0]
    with (
        Image.open(root / "party" / "couple.jpg") as original,
        Image.open(tmp_path / "ann" / "party" / "couple.jpg") as copy,
    ):
        assert copy.size == original.size
        box = (int(couple.x), int(couple.y), int(couple.x + couple.w), int(couple.y + couple.h))
        edge_before = np.asarray(original.convert("RGB").crop((box[0], box[1], box[2], box[1] + 2)), dtype=int)
        edge_after = np.asarray(copy.convert("RGB").crop((box[0], box[1], box[2], box[1] + 2)), dtype=int)
        assert np.abs(edge_after - edge_before).mean() > 30  # the box's top edge was drawn


def test_job_frames_match_the_report(job) -> None:
    env, job_id, _ = job
    frames = load_job_frames(env["DATABASE_URL"], job_id)
    report = json.loads(run_producer(env, "report", str(job_id), "--format", "json").stdout)
    assert len(frames.images) == report["images"] == 7
    assert len(frames.faces) == report["faces"]
    assert frames.faces["dominant"].value_counts().to_dict() == {k: v for k, v in report["dominant"].items() if v}
    assert frames.images["date"].notna().all()


def _screenshot(page: Path, out: Path) -> subprocess.CompletedProcess:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    need(chromium is not None, "headless Chromium (apt-get install chromium)")
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        return subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
                f"--user-data-dir={profile}",
                f"--screenshot={out}",
                "--window-size=1200,1600",
                "--hide-scrollbars",
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def test_html_report_is_self_contained_and_renders(job, tmp_path: Path) -> None:
    env, job_id, _ = job
    page = tmp_path / "report.html"
    result = run_producer(env, "report", str(job_id), "--format", "html", "--out", str(page))
    assert result.returncode == 0, result.stderr
    html = page.read_text()
    assert html.count("data:image/png;base64,") == 2  # both charts embedded
    assert html.count("data:image/jpeg;base64,") >= 3  # face thumbnails embedded
    assert "src='http" not in html and "href=" not in html  # nothing outside the file
    assert f"Job {job_id}" in html and "Per folder" in html and "Per date" in html
    shot = tmp_path / "shot.png"
    browser = _screenshot(page, shot)
    assert shot.is_file(), browser.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1200, 1600)
    assert _distinct_colours(shot) > 200  # charts and faces, not a blank page
