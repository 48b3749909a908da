"""How the web service's pages and API answer as a job grows: the same requests on a
job of 1,000 images and on one of 100,000 (about 1.2 faces each, 200 folders, 400
dates), side by side, in the real app (in process, httpx) on a real SQLite file.

    python -m bench.web_pages [--small 1000] [--large 100000] [--repeat 5] [--json]

Rows are filled with SQL bulk inserts (the triggers keep `job_counts` as the worker's
writes would); no image file is read, so thumbnails and annotated photos are left out
(they cost one image decode each, whatever the job's size)."""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from db.jobs import create_job
from db.migrate import upgrade
from db.schema import Face, Image
from db.session import make_session_factory
from emotion_batch.config import Settings
from emotion_batch.labels import EMOTIONS
from producer.web.app import create_app

REQUESTS = (
    ("job list page", "/"),
    ("job page (counts, tables)", "/jobs/{job}"),
    ("status JSON", "/api/jobs/{job}"),
    ("report JSON by folder", "/api/jobs/{job}/report?by=folder"),
    ("report CSV by date", "/api/jobs/{job}/report?by=date&format=csv"),
    ("gallery page 1", "/jobs/{job}/faces"),
    ("gallery: sad >= 50%", "/jobs/{job}/faces?emotion=sad&min_percent=50"),
    ("faces JSON, deep page", "/api/jobs/{job}/faces?offset={deep}&limit=48"),
    ("chart PNG per folder", "/api/jobs/{job}/charts/emotions-by-folder.png"),
)


def _image_row(job_id: int, i: int, faces: int, start: datetime) -> dict:
    """The `i`-th image of the bench job, finished with `faces` faces."""
    return {
        "job_id": job_id,
        "path": f"/photos/f{i % 200:03d}/img{i:06d}.jpg",
        "folder": f"/photos/f{i % 200:03d}",
        "sha256": f"{i:064x}",
        "size_bytes": 200_000,
        "status": "done" if faces else "no_face",
        "file_mtime": start + timedelta(days=i % 400),
        "face_count": faces,
        "width": 1200,
        "height": 900,
        "backend": "cnn",
        "model_version": "bench",
        "processed_at": start,
    }


def _face_rows(rng: random.Random, image_id: int, face_count: int) -> list[dict]:
    """The faces of one image, each with random emotion shares."""
    rows = []
    for index in range(face_count):
        weights = [rng.random() ** 3 for _ in EMOTIONS]
        total = sum(weights)
        pct = {e: 100 * w / total for e, w in zip(EMOTIONS, weights)}
        box = {"x": 100, "y": 100, "w": 200, "h": 200, "confidence": 0.9}
        dominant = max(pct, key=lambda e: pct[e])
        rows.append(
            {"image_id": image_id, "face_index": index, **box, **pct, "dominant": dominant}
            | {"backend": "cnn", "model_version": "bench"}
        )
    return rows


def fill(url: str, images: int, seed: int = 7) -> int:
    """One finished job of `images` images with faces; returns its id."""
    rng = random.Random(seed)
    sessions = make_session_factory(url)
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    with sessions() as session:
        job = create_job(session, f"bench {images}", "cnn", 32, ["/photos"], False)
        job_id = job.id
        first_id = 0
        for chunk_start in range(0, images, 5000):
            count = min(5000, images - chunk_start)
            rows = [
                _image_row(job_id, i, rng.choice((0, 1, 1, 1, 2)), start)
                for i in range(chunk_start, chunk_start + count)
            ]
            session.execute(insert(Image), rows)
            written = session.execute(
                select(Image.id, Image.face_count).where(Image.job_id == job_id, Image.id > first_id).order_by(Image.id)
            ).all()
            faces_rows = [face for image_id, face_count in written for face in _face_rows(rng, image_id, face_count)]
            if faces_rows:
                session.execute(insert(Face), faces_rows)
            first_id = written[-1][0]
            session.commit()
    return job_id


def time_requests(client: TestClient, job: int, deep: int, repeat: int) -> dict[str, tuple[float, float]]:
    """(first request, median of the next `repeat`) in ms per request: reports and charts
    are cached per job state, so the first view pays the aggregation and later ones not."""
    times = {}
    for label, template in REQUESTS:
        url = template.format(job=job, deep=deep)
        samples = []
        for _ in range(repeat + 1):
            began = time.perf_counter()
            response = client.get(url)
            samples.append(time.perf_counter() - began)
            assert response.status_code == 200, (url, response.text[:200])
        times[label] = (samples[0] * 1000, statistics.median(samples[1:]) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in (args.small, args.large):
            url = f"sqlite:///{Path(tmp) / f'web{size}.db'}"
            upgrade(url)
            began = time.perf_counter()
            job = fill(url, size)
            filled = time.perf_counter() - began
            settings = Settings(_env_file=None, database_url=url, upload_root=Path(tmp) / "uploads")
            with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
                results[size] = time_requests(client, job, deep=size // 2, repeat=args.repeat)
            print(f"filled {size} images in {filled:.1f} s", flush=True)
    small, large = results[args.small], results[args.large]
    if args.json:
        print(json.dumps({"small": args.small, "large": args.large, "ms": results}, indent=1))
    print(f"\nmachine: {platform.processor() or platform.machine()}, {platform.python_version()}, SQLite")
    print(
        f"{'ms: first request / later ones':32} {f'{args.small:,} images':>17} {f'{args.large:,} images':>19}"
        "   ratio (first, later)"
    )
    for label, _ in REQUESTS:
        (s1, s2), (l1, l2) = small[label], large[label]
        print(f"{label:32} {s1:8.1f} / {s2:6.1f} {l1:9.1f} / {l2:7.1f}   {l1 / s1:6.1f}x {l2 / s2:6.1f}x")


if __name__ == "__main__":
    main()
