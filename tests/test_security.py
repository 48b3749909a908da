"""A password-protected Redis: the password travels in REDIS_URL for every command and
worker, and a wrong one is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from producer.local import LocalRedis, LocalWorker
from tests.conftest import need, run_producer

pytestmark = pytest.mark.integration


def test_redis_password_via_redis_url(tmp_path: Path, worker_env: dict[str, str], photos_dir: Path) -> None:
    need(shutil.which("redis-server") is not None, "redis-server")
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("img1.jpg", "couple.jpg"):
        shutil.copy(photos_dir / name, photos / name)
    with LocalRedis(tmp_path / "redis", password="s3cret-pass") as redis:
        env = {**worker_env, "REDIS_URL": redis.url, "WORKER_BACKENDS": json.dumps(["deepface"])}
        wrong = run_producer(
            {**env, "REDIS_URL": redis.url.replace("s3cret-pass", "nope")},
            "submit",
            str(photos),
            "--backend",
            "deepface",
            timeout=120,
        )
        assert wrong.returncode != 0
        assert "cannot use the broker" in wrong.stderr and "nope" not in wrong.stderr, wrong.stderr
        assert "Traceback" not in wrong.stderr
        with LocalWorker(env, name="secure", log_file=tmp_path / "worker.log"):
            ok = run_producer(env, "submit", str(photos), "--backend", "deepface", "--wait", "--timeout", "240")
    assert ok.returncode == 0, ok.stderr + (tmp_path / "worker.log").read_text()[-2000:]
    report = json.loads(run_producer(env, "report", "--format", "json").stdout)
    assert report["job"] == 1, "the refused submit must not have recorded a job"
    assert report["images"] == 2 and report["faces"] == 3


def test_annotated_copies_refuse_photos_linked_from_outside_the_roots(photos_dir: Path, tmp_path: Path) -> None:
    """`producer annotate` (annotate_images) reads no photo whose real path leaves the
    allowed roots, as the web service refuses to serve one."""
    import shutil

    from producer.annotate import annotate_images

    root, outside = tmp_path / "library", tmp_path / "private"
    root.mkdir()
    outside.mkdir()
    photo = sorted(photos_dir.glob("*.jpg"))[0]
    shutil.copy(photo, root / "inside.jpg")
    shutil.copy(photo, outside / "secret.jpg")
    (root / "escape.jpg").symlink_to(outside / "secret.jpg")
    images = [(str(root / "inside.jpg"), []), (str(root / "escape.jpg"), [])]
    written, unreadable = annotate_images(images, tmp_path / "out", 50_000_000, 50_000_000, [root])
    assert [p.name for p in written] == ["inside.jpg"] and unreadable == [str(root / "escape.jpg")]
    written, unreadable = annotate_images(images, tmp_path / "out2", 50_000_000, 50_000_000)
    assert len(written) == 2 and not unreadable  # no roots: anywhere
