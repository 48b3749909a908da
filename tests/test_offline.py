"""The offline first run with real parts: no YuNet file and no way to download it, so
`DETECTOR=auto` is BlazeFace in the worker and in the producer alike. A real
redis-server, a real Celery worker process, the real producer CLI and a SQLite file.

- one image that breaks detection never fails the other images of its batch;
- an unchanged folder submitted again is reused at submit time (nothing queued);
- `submit --detector skip` analyses folders of face crops, one face per image.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from bench.detect import _skimage
from db.members import in_job
from db.schema import Image, Job
from db.session import make_session_factory
from emotion_batch.labels import EMOTIONS
from producer.local import LocalWorker
from tests.conftest import run_producer

pytestmark = pytest.mark.integration

NO_YUNET_URL = "http://127.0.0.1:9/face_detection_yunet_2023mar.onnx"  # nothing listens there
PHOTOS = ("couple.jpg", "img1.jpg", "img3.jpg", "img10.jpg", "img12.jpg", "img20.jpg")


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory, redis_server, shared_data: Path):
    """A worker and producer environment with no YuNet anywhere: an empty model cache, a
    DEEPFACE_HOME without weights, no YUNET_MODEL and a download URL nobody answers."""
    root = tmp_path_factory.mktemp("offline")
    (root / "home").mkdir()
    env = {
        "DATABASE_URL": f"sqlite:///{root / 'emotion.db'}",
        "REDIS_URL": redis_server.url,
        "QUEUE": "offline",
        "DETECTOR": "auto",
        "DEEPFACE_HOME": str(root / "home"),
        "MODEL_CACHE": str(root / "cache"),
        "YUNET_URL": NO_YUNET_URL,
        "DOWNLOAD_TIMEOUT": "5",
        "WORKER_BACKENDS": '["cnn"]',
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("YUNET_MODEL", raising=False)
        with LocalWorker(env, concurrency=1, name="offline", log_file=root / "worker.log"):
            yield env, root


def _submit(env: dict[str, str], root: Path, *args: str) -> tuple[int, str]:
    """`producer submit ... --wait`; the job id and what it said on stderr."""
    done = run_producer(env, "submit", *args, "--wait", "--timeout", "400")
    assert done.returncode == 0, done.stderr + (root / "worker.log").read_text()[-3000:]
    return int(done.stdout.strip().splitlines()[-1]), done.stderr


def _images(env: dict[str, str], job: int) -> dict[str, Image]:
    with make_session_factory(env["DATABASE_URL"])() as session:
        rows = session.scalars(select(Image).where(in_job(job))).all()
        for row in rows:
            _ = list(row.faces)
        return {Path(r.path).name: r for r in rows}


def test_one_image_that_breaks_detection_never_fails_its_batch(offline, photos_dir: Path, tmp_path: Path) -> None:
    """Good photos, a real image on which BlazeFace finds only a face smaller than
    MIN_FACE (it once failed the whole batch: `cannot reshape array of size 0`) and a
    truncated file, all in one batch: each image gets its own outcome."""
    env, root = offline
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in PHOTOS:
        shutil.copy(photos_dir / name, folder / name)
    small = cv2.resize(_skimage("astronaut"), (100, 100), interpolation=cv2.INTER_AREA)
    PILImage.fromarray(small).save(folder / "small-face.png")
    (folder / "truncated.jpg").write_bytes((photos_dir / "img1.jpg").read_bytes()[:5000])
    job, _ = _submit(env, root, str(folder), "--batch-size", "8")

    images = _images(env, job)
    assert len(images) == 8
    assert not [r.error for r in images.values() if r.error and "batch error" in r.error]
    assert images["small-face.png"].status == "no_face", images["small-face.png"].error
    truncated = images["truncated.jpg"]
    assert truncated.status == "failed" and "corrupt or truncated" in (truncated.error or "")
    for name in PHOTOS:
        assert images[name].status == "done", (name, images[name].error)
        assert images[name].detector.startswith("blazeface-")  # the offline fallback
    assert images["couple.jpg"].face_count == 2


def test_an_unchanged_folder_is_reused_at_submit_time_offline(offline, photos_dir: Path, tmp_path: Path) -> None:
    """The producer resolves `auto` as the worker does (BlazeFace here), so the second
    submit of an analysed folder finishes every image at once and queues nothing."""
    env, root = offline
    folder = tmp_path / "again"
    folder.mkdir()
    for name in PHOTOS[:4]:
        shutil.copy(photos_dir / name, folder / name)
    PILImage.new("RGB", (300, 200), (128, 128, 128)).save(folder / "grey.png")
    first, _ = _submit(env, root, str(folder))
    assert {r.status for r in _images(env, first).values()} == {"done", "no_face"}

    second, said = _submit(env, root, str(folder))
    assert "0 queued in 0 batches, 5 results reused" in " ".join(said.split()), said  # lines wrap at 80
    again = _images(env, second)
    assert {name: r.status for name, r in again.items()} == {name: r.status for name, r in _images(env, first).items()}
    assert {r.detector for r in again.values()} == {r.detector for r in _images(env, first).values()}


def test_submit_with_detector_skip_stores_one_face_per_crop(offline, shared_data: Path, tmp_path: Path) -> None:
    """Face crops (FER2013 test faces) with `--detector skip`, whatever the worker's
    DETECTOR: every image is one face whose box is the whole image, recorded as `skip`."""
    env, root = offline
    folder = tmp_path / "crops"
    for emotion in EMOTIONS:
        (folder / emotion).mkdir(parents=True)
        for path in sorted((shared_data / "fer2013" / "test" / emotion).glob("*.png"))[:2]:
            shutil.copy(path, folder / emotion / path.name)
    job, _ = _submit(env, root, str(folder), "--detector", "skip")

    images = _images(env, job)
    assert len(images) == 2 * len(EMOTIONS)
    for name, row in images.items():
        assert (row.status, row.face_count, row.detector) == ("done", 1, "skip"), (name, row.error)
        (face,) = row.faces
        assert (face.x, face.y, face.w, face.h, face.detector) == (0, 0, 48, 48, "skip")
    with make_session_factory(env["DATABASE_URL"])() as session:
        assert session.scalar(select(Job.detector).where(Job.id == job)) == "skip"
