"""`worker.batch.process_batch` in process, fast and deterministic: a real SQLite file,
real JPEG files and the real pipeline (`Analyzer`), with small test doubles behind the
`FaceDetector` and `EmotionClassifier` protocols instead of the models (dramatiq's
StubBroker + join() spirit). A worker process killed mid-batch is a `BaseException`
raised from the detector: nothing of the batch is stored, its attempts stay counted,
as after a SIGKILL. The real-process versions of these faults live in test_faults.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from billiard.exceptions import SoftTimeLimitExceeded
from PIL import Image as PILImage
from sqlalchemy import select

from db.jobs import create_job, pending_refs
from db.migrate import upgrade
from db.records import ScannedFile
from db.registration import register_chunk
from db.schema import Face, Image
from db.session import make_session_factory
from emotion_batch.config import Settings
from emotion_batch.detect import FaceBox
from emotion_batch.hashing import sha256_file
from emotion_batch.labels import EMOTIONS
from emotion_batch.messages import BatchMessage
from emotion_batch.pipeline import Analyzer
from worker.batch import process_batch


class Killed(BaseException):
    """The worker process dying mid-batch (not an Exception: nothing catches it)."""


class BoxDetector:
    """One face, the centre half of the image; `kill_on` / `raise_on` name poison images
    by their width (the detector sees pixels, not paths)."""

    name = "double"
    version = "double-1"

    def __init__(self, kill_on: int | None = None, raise_on: int | None = None) -> None:
        self.kill_on, self.raise_on = kill_on, raise_on

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        height, width = rgb.shape[:2]
        if width == self.kill_on:
            raise Killed(f"worker killed on a {width} px image")
        if width == self.raise_on:
            raise RuntimeError("detector bug")
        return [FaceBox(width // 4, height // 4, width // 2, height // 2, 0.9)]


class BrightnessClassifier:
    """Dominant emotion from a face's mean grey level, so each photo's answer is known;
    remembers how many faces each call got (one call per batch is the contract)."""

    name = "double"
    labels = EMOTIONS
    model_version = "double-v1"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, faces: np.ndarray) -> np.ndarray:
        self.calls.append(len(faces))
        probs = np.full((len(faces), len(EMOTIONS)), 0.05, np.float32)
        for row, face in enumerate(faces):
            probs[row, int(face.mean()) * len(EMOTIONS) // 256] = 0.7
        return probs


GREYS = tuple(int((n + 0.5) * 256 / len(EMOTIONS)) for n in range(6))  # -> angry ... surprise


@pytest.fixture
def job(tmp_path: Path):
    """Six flat grey JPEGs of widths 200..205 registered as one pending job."""
    paths = []
    for n, grey in enumerate(GREYS):
        paths.append(tmp_path / f"p{n}.jpg")
        PILImage.new("RGB", (200 + n, 160), (grey, grey, grey)).save(paths[-1], quality=95)
    return pending_job(tmp_path, paths, 8)


def pending_job(tmp_path: Path, paths: list[Path], batch_size: int):
    """`paths` registered as one pending job in a new SQLite file: its settings, sessions
    and the message of its one batch."""
    url = f"sqlite:///{tmp_path / 'batch.db'}"
    upgrade(url)
    files = [ScannedFile(str(path), str(tmp_path), sha256_file(path), path.stat().st_size, None) for path in paths]
    sessions = make_session_factory(url)
    with sessions() as session:
        record = create_job(session, "inprocess", "double", batch_size, [str(tmp_path)], False)
        register_chunk(session, record.id, files, len(files))
        refs = tuple(pending_refs(session, record.id))
    settings = Settings(_env_file=None, database_url=url, max_attempts=3)
    return settings, sessions, BatchMessage(record.id, 0, "double", refs)


def run(settings: Settings, message: BatchMessage, detector: BoxDetector, classifier: BrightnessClassifier):
    analyzer = Analyzer(lambda: detector, classifier, settings, threads=2)
    try:
        return process_batch(message, settings=settings, analyzer_for=lambda backend, detector: analyzer)
    finally:
        analyzer.close()


def outcomes(sessions) -> dict[str, tuple[str, str | None, int, list[str]]]:
    """image file name -> (status, error, attempts, dominant emotions of its faces)."""
    with sessions() as session:
        images = session.scalars(select(Image).order_by(Image.id)).all()
        faces = session.execute(select(Face.image_id, Face.dominant).order_by(Face.face_index)).all()
    dominant: dict[int, list[str]] = {}
    for image_id, emotion in faces:
        dominant.setdefault(image_id, []).append(emotion)
    return {Path(i.path).name: (i.status, i.error, i.attempts, dominant.get(i.id, [])) for i in images}


def test_a_batch_is_one_classifier_call_and_every_image_one_outcome(job) -> None:
    settings, sessions, message = job
    classifier = BrightnessClassifier()
    summary = run(settings, message, BoxDetector(), classifier)
    assert classifier.calls == [6]  # every face of the batch in one call
    assert (summary.analysed, summary.written, summary.faces, summary.isolated) == (6, 6, 6, False)
    result = outcomes(sessions)
    assert {name: (s, faces) for name, (s, _, _, faces) in result.items()} == {
        f"p{n}.jpg": ("done", [EMOTIONS[n]]) for n in range(6)
    }
    again = run(settings, message, BoxDetector(), classifier)  # redelivered after success
    assert (again.analysed, again.written) == (0, 0) and classifier.calls == [6]
    assert outcomes(sessions) == result


def test_a_poison_image_that_kills_the_worker_costs_only_its_own_attempts(job) -> None:
    settings, sessions, message = job
    classifier, poison = BrightnessClassifier(), BoxDetector(kill_on=202)
    with pytest.raises(Killed):  # first delivery: the whole batch dies, nothing stored
        run(settings, message, poison, classifier)
    assert {s for s, *_ in outcomes(sessions).values()} == {"pending"}
    for _ in range(2):  # redeliveries: image by image, so the others complete
        with pytest.raises(Killed):
            run(settings, message, poison, classifier)
    final = run(settings, message, poison, classifier)  # p2 is past max_attempts: failed
    assert final.isolated and final.exhausted == 1
    result = outcomes(sessions)
    assert result["p2.jpg"][:3] == ("failed", "gave up after 3 attempts (worker killed or timed out each time)", 3)
    for n in (0, 1, 3, 4, 5):
        assert result[f"p{n}.jpg"][0] == "done" and result[f"p{n}.jpg"][3] == [EMOTIONS[n]]
    assert all(calls == 1 for calls in classifier.calls)  # isolated: one image per call
    with sessions() as session:  # no face stored twice across the deliveries
        assert len(session.scalars(select(Face.id)).all()) == 5


def test_a_detector_error_fails_that_image_alone_and_the_rest_is_one_classifier_call(job) -> None:
    settings, sessions, message = job
    classifier = BrightnessClassifier()
    summary = run(settings, message, BoxDetector(raise_on=201), classifier)
    assert (summary.written, summary.faces, summary.isolated) == (6, 5, False)
    assert classifier.calls == [5]  # the other images' faces, together
    result = outcomes(sessions)
    assert result["p1.jpg"][:3] == ("failed", "face detection failed: RuntimeError: detector bug", 1)
    for n in (0, 2, 3, 4, 5):
        assert result[f"p{n}.jpg"][0] == "done" and result[f"p{n}.jpg"][3] == [EMOTIONS[n]]


class PoisonClassifier(BrightnessClassifier):
    """Raises, or answers NaN, whenever the batch holds a face of grey level `grey`."""

    def __init__(self, grey: int, nan: bool) -> None:
        super().__init__()
        self.grey, self.nan = grey, nan

    def predict(self, faces: np.ndarray) -> np.ndarray:
        probs = super().predict(faces)
        poison = [row for row, face in enumerate(faces) if abs(float(face.mean()) - self.grey) < 2]
        if poison and not self.nan:
            raise RuntimeError("classifier bug")
        probs[poison] = np.nan
        return probs


@pytest.mark.parametrize(
    ("nan", "reason"),
    [
        (False, "emotion classifier failed: RuntimeError: classifier bug"),
        (True, "emotion classifier failed: ValueError: classifier answered (1, 7) scores (finite: False)"),
    ],
)
def test_a_face_the_classifier_cannot_take_fails_its_image_alone(job, nan: bool, reason: str) -> None:
    """The batch's one call fails (raises, or gives scores that are not numbers): each
    image's faces are then classified alone, and only the image the classifier cannot
    take is failed, with the reason."""
    settings, sessions, message = job
    classifier = PoisonClassifier(GREYS[3], nan)
    summary = run(settings, message, BoxDetector(), classifier)
    assert (summary.written, summary.faces) == (6, 5)
    assert classifier.calls == [6, 1, 1, 1, 1, 1, 1]
    result = outcomes(sessions)
    assert result["p3.jpg"][:2] == ("failed", reason)
    for n in (0, 1, 2, 4, 5):
        assert result[f"p{n}.jpg"][0] == "done" and result[f"p{n}.jpg"][3] == [EMOTIONS[n]]


class OutOfTimeClassifier(BrightnessClassifier):
    """The task's soft time limit firing during the batch's classifier call."""

    def predict(self, faces: np.ndarray) -> np.ndarray:
        super().predict(faces)
        raise SoftTimeLimitExceeded()


def test_running_out_of_time_while_classifying_is_not_blamed_on_an_image(job) -> None:
    """Out of time is the task's to retry (worker.tasks), not a classifier failure to narrow
    down image by image: nothing is stored and no image is failed."""
    settings, sessions, message = job
    classifier = OutOfTimeClassifier()
    with pytest.raises(SoftTimeLimitExceeded):
        run(settings, message, BoxDetector(), classifier)
    assert classifier.calls == [6]
    assert {s for s, *_ in outcomes(sessions).values()} == {"pending"}
