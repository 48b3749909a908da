"""Every page the web service renders, in headless Chromium with the network cut off
(any request that leaves the server is refused and recorded): the API docs (Swagger UI
at /docs) render from the installed packages, no page asks for anything
elsewhere, and at 1280 px the job page's tables stay inside their panels. `producer
serve` runs in its own process on a real SQLite file holding a job with every outcome."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import select

from db.schema import Image
from db.session import make_session_factory
from emotion_batch.config import REPO_ROOT
from producer.local import free_port
from tests.conftest import need
from tests.test_terminal_width import every_outcome
from tests.test_web_browser import CHROMIUM, start_serve

pytestmark = pytest.mark.integration


@pytest.fixture
def served(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'web.db'}"
    job = every_outcome(url)
    with make_session_factory(url)() as session:
        image = session.scalar(select(Image.id).where(Image.job_id == job, Image.face_count > 0).limit(1))
    env = {k: v for k, v in os.environ.items() if k not in ("WEB_TOKEN", "ALLOWED_ROOTS")}
    env.update({"DATABASE_URL": url, "REDIS_URL": "redis://127.0.0.1:1/0", "PYTHONPATH": str(REPO_ROOT)})
    port = free_port()
    process, base = start_serve(["--port", str(port)], env, tmp_path, tmp_path / "serve.log", port)
    yield base, job, image
    process.terminate()
    process.wait(timeout=30)


def test_pages_and_api_docs_render_with_no_network(served) -> None:
    need(CHROMIUM.exists(), "Debian's chromium (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    base, job, image = served
    elsewhere: list[str] = []

    def offline(route) -> None:  # noqa: ANN001 (playwright Route)
        if route.request.url.startswith(base + "/"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort("internetdisconnected")

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.route("**/*", offline)
        for path in ("/", "/jobs/new", "/login", f"/jobs/{job}/faces", f"/jobs/{job}/images/{image}"):
            page.goto(base + path)
            page.wait_for_load_state("networkidle")
        page.goto(f"{base}/api/jobs/{job}/report?format=html")
        page.wait_for_load_state("networkidle")

        page.goto(f"{base}/docs")
        page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
        assert page.locator(".swagger-ui .opblock").count() >= 10
        assert "emotion-batch" in page.inner_text(".swagger-ui .info .title")
        assert page.get_by_text("Create a job from server paths under the allowed roots").count() >= 1
        assert page.goto(f"{base}/redoc").status == 404  # ReDoc's bundle would fetch its logo from a CDN

        page.goto(f"{base}/jobs/{job}")
        page.wait_for_load_state("networkidle")
        overflowing = page.evaluate(
            """() => [...document.querySelectorAll("section.panel")]
                 .filter(s => s.scrollWidth > s.clientWidth + 1)
                 .map(s => s.querySelector("h2") ? s.querySelector("h2").textContent : s.id)"""
        )
        assert overflowing == [], overflowing  # every table inside its card at 1280 px
        assert page.locator("table.groups").first.inner_text().count("summer-holidays-in-the-mountains") == 1
        browser.close()
    assert elsewhere == [], elsewhere
