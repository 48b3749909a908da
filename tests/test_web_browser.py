"""The pages in a real browser: `producer serve` in its own process (real redis-server,
SQLite file, a real Celery worker started while the page is open), headless Chromium
(Debian's, driven by Playwright). The browser signs in with the token, watches the job
page reach 100%, opens the gallery, filters by an emotion and sees only those faces.

With WEB_SCREENSHOTS=DIR the two screenshots docs/web.md shows are also copied there (docs/'s come from
`WEB_SCREENSHOTS=docs pytest tests/test_web_browser.py`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis
from PIL import Image, ImageStat

from emotion_batch.config import REPO_ROOT
from producer.local import LocalWorker, free_port
from tests.conftest import need

pytestmark = pytest.mark.integration
CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "browser-test-token"
DOCS_SHOTS = ("web-job.png", "web-gallery.jpg")


@pytest.fixture
def server(tmp_path: Path, redis_server, worker_env: dict[str, str]):
    port = free_port()
    env = {
        **os.environ,
        **worker_env,
        "REDIS_URL": redis_server.url,
        "WEB_TOKEN": TOKEN,
        "UPLOAD_ROOT": str(tmp_path / "uploads"),
        "ALLOWED_ROOTS": f'["{tmp_path / "library"}"]',
    }
    process, url = start_serve(["--port", str(port)], env, REPO_ROOT, tmp_path / "serve.log", port)
    yield url, env
    process.terminate()
    process.wait(timeout=30)


def start_serve(
    args: list[str], env: dict[str, str], cwd: Path, log: Path, port: int, timeout: float = 120
) -> tuple[subprocess.Popen, str]:
    """`producer serve ARGS` in its own process, once it answers /healthz."""
    process = subprocess.Popen(
        [sys.executable, "-m", "producer.cli", "serve", *args],
        env=env,
        cwd=cwd,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError(log.read_text())


def _not_blank(path: Path) -> None:
    image = Image.open(path).convert("RGB")
    assert image.width >= 800 and image.height >= 500
    assert max(ImageStat.Stat(image).stddev) > 20, f"{path} looks blank"
    assert len(image.getcolors(maxcolors=1 << 20) or []) > 200, f"{path} has too few colours"


def _library(tmp_path: Path, photos_dir: Path) -> tuple[Path, list[Path]]:
    """The photos in two folders, family and friends; returns the library and the photos."""
    library = tmp_path / "library"
    photos = sorted(photos_dir.glob("*.jpg"))
    for folder, chosen in (("family", photos[::2]), ("friends", photos[1::2])):
        (library / folder).mkdir(parents=True)
        for photo in chosen:
            shutil.copy(photo, library / folder / photo.name)
    return library, photos


def _follow_to_the_end(page, env: dict[str, str], tmp_path: Path, shots: Path) -> None:
    """A worker starts: the job page follows the job to 100% and reloads with its tables."""
    worker_env = {
        k: env[k]
        for k in (
            "DATABASE_URL",
            "REDIS_URL",
            "YUNET_MODEL",
            "DEEPFACE_HOME",
            "WORKER_BACKENDS",
            "TF_CPP_MIN_LOG_LEVEL",
        )
    }
    with LocalWorker(worker_env, concurrency=1, name=f"browser-{tmp_path.name}", log_file=tmp_path / "worker.log"):
        # a locator, not a JavaScript string: the page's CSP forbids eval, Playwright's too
        page.locator("#state", has_text="finished").wait_for(timeout=400_000)
        assert page.inner_text("#pct") == "100.0%"
        page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1500)  # the page reloads once finished, with the final tables and charts
    page.wait_for_load_state("networkidle")
    assert page.inner_text("#pct") == "100.0%" and page.inner_text("#c-pending") == "0"
    assert page.locator("table.groups").first.inner_text().count("family") == 1
    page.screenshot(path=shots / "web-job.png", full_page=True)


def _filter_the_gallery_and_open_a_photo(page, url: str, job: int, report: dict, emotion: str, shots: Path) -> None:
    """The gallery filtered by one emotion shows only its faces; one opens as its photo."""
    page.goto(f"{url}/jobs/{job}/faces")
    page.wait_for_load_state("networkidle")
    assert page.locator(".face").count() == min(48, report["faces"])
    page.screenshot(path=shots / "web-gallery.jpg", quality=82, full_page=False)
    page.click(f"label.chip:has(input[value={emotion}])")
    page.wait_for_url(f"**emotion={emotion}**")
    page.wait_for_load_state("networkidle")
    shown = page.locator(".face").evaluate_all("els => els.map(e => e.dataset.emotion)")
    assert shown and set(shown) == {emotion} and len(shown) == min(48, report["dominant"][emotion])
    labels = page.locator(".face .label").all_inner_texts()
    assert all(label.startswith(emotion) for label in labels)
    loaded = page.locator(".face img").evaluate_all("els => els.every(e => e.complete && e.naturalWidth > 0)")
    assert loaded
    page.screenshot(path=shots / "web-gallery-filtered.jpg", quality=82, full_page=False)

    page.click(".face >> nth=0")
    page.wait_for_load_state("networkidle")
    assert page.locator("img.photo").evaluate("e => e.naturalWidth") > 0
    assert emotion in page.inner_text("table.faces-table")
    page.click("a[data-back]")  # back to the filtered gallery (a script, no inline javascript:)
    page.wait_for_url(f"**emotion={emotion}**")
    page.go_forward()
    page.wait_for_load_state("networkidle")
    page.screenshot(path=shots / "web-photo.jpg", quality=82, full_page=False)


def _submit_from_the_form(page, api: httpx.Client, url: str, job: int, photos: list[Path]) -> None:
    """The submit form: two photos uploaded from the browser become a job of their own."""
    page.goto(f"{url}/jobs/new")
    page.set_input_files("input[type=file]", [str(photos[0]), str(photos[1])])
    page.fill("input[name=name]", "from the form")
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/jobs/{job + 1}")
    uploaded = api.get(f"/api/jobs/{job + 1}").json()
    assert uploaded["name"] == "from the form" and uploaded["total"] == 2


def _keep_screenshots(shots: Path) -> None:
    """No screenshot is blank; the documentation's are copied to $WEB_SCREENSHOTS when set."""
    for shot in sorted(shots.iterdir()):
        _not_blank(shot)
    if os.environ.get("WEB_SCREENSHOTS"):
        target = Path(os.environ["WEB_SCREENSHOTS"])
        target.mkdir(parents=True, exist_ok=True)
        for name in DOCS_SHOTS:
            shutil.copy(shots / name, target / name)


def test_browser_follows_a_job_and_filters_faces(server, photos_dir: Path, tmp_path: Path) -> None:
    need(CHROMIUM.exists(), "Debian's chromium (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    url, env = server
    library, photos = _library(tmp_path, photos_dir)
    api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
    created = api.post("/api/jobs", json={"paths": [str(library)], "name": "holiday photos", "batch_size": 4})
    assert created.status_code == 202, created.text
    job = created.json()["job"]
    shots = tmp_path / "shots"
    shots.mkdir()

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        blocked: list[str] = []  # what the Content-Security-Policy stopped on our pages
        page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
        page.goto(f"{url}/jobs/{job}")
        assert "/login" in page.url  # the token is required
        page.fill("input[name=token]", TOKEN)
        page.click("button")
        page.wait_for_url(f"{url}/jobs/{job}")
        assert page.inner_text("#state") == "running" and page.inner_text("#pct") != "100.0%"

        _follow_to_the_end(page, env, tmp_path, shots)

        report = api.get(f"/api/jobs/{job}/report").json()
        present = sorted((n, e) for e, n in report["dominant"].items() if n)
        assert len(present) >= 2, report["dominant"]
        emotion = present[0][1]  # the rarest emotion found: a filter that removes most faces

        _filter_the_gallery_and_open_a_photo(page, url, job, report, emotion, shots)
        _submit_from_the_form(page, api, url, job, photos)
        assert blocked == []
        browser.close()

    _keep_screenshots(shots)


def test_serve_embedded_from_defaults(tmp_path: Path, worker_env: dict[str, str], photos_dir: Path) -> None:
    """`producer serve --embedded`: its own redis-server and worker, the default SQLite
    file in the working folder; an upload is analysed, and both stop with the server."""
    need(shutil.which("redis-server") is not None, "redis-server")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "ALLOWED_ROOTS", "WEB_TOKEN")}
    env.update({k: worker_env[k] for k in ("YUNET_MODEL", "DEEPFACE_HOME", "TF_CPP_MIN_LOG_LEVEL")})
    env["PYTHONPATH"] = str(REPO_ROOT)
    process, url = start_serve(["--embedded", "--port", str(port)], env, tmp_path, tmp_path / "serve.log", port)
    try:
        photo = photos_dir / "couple.jpg"
        created = httpx.post(f"{url}/api/jobs/upload", files=[("files", (photo.name, photo.read_bytes()))], timeout=60)
        assert created.status_code == 201, created.text
        job = created.json()["job"]
        deadline = time.monotonic() + 300
        while not (status := httpx.get(f"{url}/api/jobs/{job}", timeout=10).json())["complete"]:
            assert time.monotonic() < deadline, (
                status,
                (tmp_path / ".emotion-batch" / "worker.log").read_text()[-2000:],
            )
            time.sleep(0.5)
        assert status["done"] == 1 and status["faces"] == 2
        samples = httpx.post(f"{url}/api/jobs", json={"paths": [str(tmp_path / "sample-photos")]}, timeout=60)
        assert samples.status_code == 202, samples.text  # the sample photos are submittable by path
        assert (tmp_path / "emotion-batch.db").exists() and (tmp_path / "emotion-batch-uploads").is_dir()
    finally:
        process.terminate()
        process.wait(timeout=90)
    text = (tmp_path / "serve.log").read_text()
    assert "started redis-server" in text and "Traceback" not in text
    assert process.returncode == 0
    redis_url = re.search(r"started redis-server on (redis://\S+)", text).group(1)
    with pytest.raises(redis.ConnectionError):  # stopped with the server
        redis.Redis.from_url(redis_url, socket_timeout=2).ping()
    log_file = tmp_path / ".emotion-batch" / "worker.log"
    assert "Warm shutdown" in log_file.read_text() or "worker: Warm shutdown" in log_file.read_text()
