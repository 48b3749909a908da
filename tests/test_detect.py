"""Face detectors: the BlazeFace fallback on real images, and YuNet fetched on first use
from a real HTTP server started here (serving the shared file: no internet needed)."""

from __future__ import annotations

import logging
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from bench.detect import _skimage, iou
from emotion_batch.config import Settings
from emotion_batch.detect import SETUPS, choose_detector, detector_class, expected_detector_version, make_detector
from emotion_batch.detect.blazeface import FRAMING, FULL_SCORE, BlazeFaceDetector, default_models
from emotion_batch.detect.fetch import YUNET, fetch
from emotion_batch.detect.yunet import YuNetDetector
from emotion_batch.errors import WeightsMissingError
from emotion_batch.hashing import sha256_file
from emotion_batch.imaging import load_image
from emotion_batch.registry import DETECTORS
from tests.conftest import run_producer

ASTRONAUT_FACE = (178, 62, 90, 112)  # bench/detect_labels.json


class FileServer:
    """A real HTTP server on loopback serving one folder, counting the requests."""

    def __init__(self, folder: Path) -> None:
        requests = self.requests = []

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(folder), **kwargs)

            def log_message(self, *args) -> None:
                requests.append(self.path)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def serve():
    servers: list[FileServer] = []

    def start(folder: Path) -> FileServer:
        servers.append(FileServer(folder))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _settings(tmp_path: Path, **values) -> Settings:
    """No YuNet file anywhere: an empty cache and an empty DEEPFACE_HOME."""
    (tmp_path / "home").mkdir(exist_ok=True)
    values = {"model_cache": tmp_path / "cache", "deepface_home": tmp_path / "home", **values}
    return Settings(_env_file=None, **values)


def test_blazeface_finds_the_astronaut_and_nothing_on_faceless_photos() -> None:
    detector = BlazeFaceDetector()
    assert detector.version.startswith("blazeface-") and len(detector.version) == len("blazeface-") + 16
    faces = detector.detect(_skimage("astronaut"))
    assert len(faces) == 1 and iou((faces[0].x, faces[0].y, faces[0].w, faces[0].h), ASTRONAUT_FACE) >= 0.5
    assert 0.6 <= faces[0].confidence <= 1.0
    for name in ("astronaut-suit", "coffee", "chelsea", "coins", "moon"):  # Haar sees faces on the suit, coins, moon
        assert detector.detect(_skimage(name)) == [], name
    assert detector.detect(np.zeros((10, 3000, 3), np.uint8)) == []  # extreme aspect ratio, nothing to find


def small_astronaut(side: int = 100) -> np.ndarray:
    """The astronaut shrunk so that BlazeFace finds her face, but smaller than MIN_FACE."""
    import cv2

    return cv2.resize(_skimage("astronaut"), (side, side), interpolation=cv2.INTER_AREA)


def test_faces_found_but_all_below_min_face_are_none_not_an_error() -> None:
    """BlazeFace (and YuNet: both give landmarks) finds a face smaller than MIN_FACE:
    no box is kept, and the empty landmark array must not fail the image."""
    detector = BlazeFaceDetector()
    assert len(detector.detect(small_astronaut(150))) == 1  # 28 px: kept
    for side in (60, 100, 120):
        assert detector.detect(small_astronaut(side)) == [], side
    assert len(BlazeFaceDetector(min_face=8).detect(small_astronaut(100))) == 1  # the face is there


def test_the_expected_version_is_none_when_the_named_yunet_file_is_missing(tmp_path: Path) -> None:
    """YUNET_MODEL naming no file: the worker refuses to start; submit reuses nothing."""
    settings = _settings(tmp_path, yunet_model=tmp_path / "nowhere.onnx", model_download=False)
    assert expected_detector_version(settings) is None
    with pytest.raises(WeightsMissingError, match="YuNet model not found"):
        make_detector(settings)


def test_skip_is_a_registered_detector_whose_one_face_is_the_whole_image(tmp_path: Path) -> None:
    settings = _settings(tmp_path, detector="skip")
    detector = make_detector(settings)
    assert isinstance(detector, detector_class("skip")) and detector.version == "skip"
    assert choose_detector(settings).version == expected_detector_version(settings) == "skip"
    (face,) = detector.detect(np.zeros((30, 50, 3), np.uint8))
    assert (face.x, face.y, face.w, face.h, face.confidence, face.landmarks) == (0, 0, 50, 30, 1.0, None)


def _xywh(face) -> tuple[int, int, int, int]:
    return (face.x, face.y, face.w, face.h)


def test_blazeface_boxes_are_reframed_by_the_fitted_framing() -> None:
    """One model, one pass, one real face: the shipped box is exactly FRAMING applied to
    BlazeFace's own box (width, height, centre shift), to the pixel."""
    full = default_models()[0][0]
    framed = BlazeFaceDetector(((full, FULL_SCORE),), tiles=False).detect(_skimage("astronaut"))
    own = BlazeFaceDetector(((full, FULL_SCORE),), tiles=False, framing={}).detect(_skimage("astronaut"))
    assert len(framed) == len(own) == 1
    f, o = framed[0], own[0]
    fit = FRAMING[full.name]
    assert abs(f.w - o.w * fit.width) <= 1.5 and abs(f.h - o.h * fit.height) <= 1.5
    assert abs((f.x + f.w / 2) - (o.x + o.w / 2 + fit.shift_x * o.w)) <= 1.5
    assert abs((f.y + f.h / 2) - (o.y + o.h / 2 + fit.shift_y * o.h)) <= 1.5
    assert f.landmarks and o.landmarks and np.allclose(f.landmarks, o.landmarks, atol=0.01)  # eyes stay
    assert f.confidence == pytest.approx(o.confidence)


def test_blazeface_framing_lands_on_yunets_boxes_and_is_part_of_its_version(
    shared_data: Path, yunet_model: Path, tmp_path: Path
) -> None:
    """On real photos, the shipped BlazeFace boxes overlap YuNet's (the framing the crop
    was tuned on) better than BlazeFace's own boxes do; and a different framing is a
    different detector version, everywhere the version is computed."""
    framed, own, yunet = BlazeFaceDetector(), BlazeFaceDetector(framing={}), YuNetDetector(yunet_model)
    pairs = []
    for name in ("couple.jpg", "img1.jpg", "img3.jpg", "img10.jpg"):
        rgb = load_image(shared_data / "photos" / name, 40_000_000, 50_000_000, 1280).rgb
        for reference in yunet.detect(rgb):
            found = (framed.detect(rgb), own.detect(rgb))
            pairs.append([max((iou(_xywh(f), _xywh(reference)) for f in faces), default=0.0) for faces in found])
    framed_iou, own_iou = np.array(pairs).T
    assert len(pairs) >= 5 and (framed_iou >= 0.5).all()
    assert np.median(framed_iou) > np.median(own_iou) + 0.05, (framed_iou, own_iou)

    assert framed.version != own.version and framed.version.startswith("blazeface-")
    settings = _settings(tmp_path, detector="blazeface")
    assert choose_detector(settings).version == make_detector(settings).version == framed.version
    assert expected_detector_version(settings) == framed.version


def test_auto_downloads_yunet_once_from_the_pinned_file(tmp_path: Path, yunet_model: Path, serve, caplog) -> None:
    server = serve(yunet_model.parent)
    settings = _settings(tmp_path, yunet_url=f"{server.url}/{YUNET.name}")
    with caplog.at_level(logging.WARNING):
        detector = make_detector(settings)
    assert isinstance(detector, YuNetDetector)
    stored = tmp_path / "cache" / YUNET.name
    assert detector.model == stored and sha256_file(stored) == YUNET.sha256
    assert detector.version == "yunet-" + YUNET.sha256[:16]
    assert [r.getMessage() for r in caplog.records if "download" in r.getMessage()] == [
        f"downloaded the YuNet face detector (232 KB, once) to {stored}"
    ]
    assert sorted(p.name for p in stored.parent.iterdir()) == [YUNET.name]  # no temporary file left
    make_detector(settings)  # another thread's detector: no second request
    fresh = _settings(tmp_path, yunet_url=f"{server.url}/elsewhere.onnx", model_download=False)
    assert make_detector(fresh).version == detector.version  # a new process finds the cached file
    assert server.requests == [f"/{YUNET.name}"]


def test_wrong_content_is_refused_and_the_fallback_used(tmp_path: Path, serve, caplog) -> None:
    served = tmp_path / "served"
    served.mkdir()
    (served / YUNET.name).write_bytes(b"not the model" * 1000)
    server = serve(served)
    settings = _settings(tmp_path, yunet_url=f"{server.url}/{YUNET.name}")
    with caplog.at_level(logging.WARNING):
        detector = make_detector(settings)
    assert isinstance(detector, BlazeFaceDetector)
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").iterdir()) == []
    message = caplog.records[-1].getMessage()
    assert message.startswith("YuNet face detector not downloaded (ValueError); using BlazeFace")
    assert server.requests == [f"/{YUNET.name}"]  # pooch does not retry by default
    with pytest.raises(WeightsMissingError, match="SHA256 hash of downloaded file"):  # `producer models fetch`
        fetch(YUNET, tmp_path / "cache", settings.yunet_url)


def test_offline_names_the_file_and_where_to_put_it(tmp_path: Path, serve, caplog, monkeypatch) -> None:
    import emotion_batch.detect as detect

    monkeypatch.setattr(detect, "_fallbacks_told", set())  # as in a fresh process: earlier tests told it
    server = serve(tmp_path)
    server.close()  # nothing listens on that port any more
    settings = _settings(tmp_path, yunet_url=f"{server.url}/{YUNET.name}", download_timeout=5)
    with caplog.at_level(logging.WARNING):
        choice = choose_detector(settings)
    assert choice.name == "blazeface"
    assert [r.getMessage() for r in caplog.records] == [  # one line, nothing else
        "YuNet face detector not downloaded (ConnectionError); using BlazeFace "
        "(DETECTOR=auto; `producer models fetch` gets YuNet)"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # another choice in this process: not told again
        assert choose_detector(settings.model_copy(update={"model_cache": tmp_path / "other"})).name == "blazeface"
    assert not [r for r in caplog.records if "BlazeFace" in r.getMessage()]
    target = tmp_path / "cache" / YUNET.name  # `producer models fetch` names the file and where it goes
    with pytest.raises(WeightsMissingError) as told:
        fetch(YUNET, tmp_path / "cache", settings.yunet_url, timeout=5)
    assert f"place {YUNET.name} (sha256 {YUNET.sha256}" in str(told.value) and f"at {target}" in str(told.value)


def test_no_download_when_disabled_and_explicit_yunet_fails_clearly(tmp_path: Path, serve) -> None:
    server = serve(tmp_path)
    quiet = _settings(tmp_path, yunet_url=f"{server.url}/{YUNET.name}", model_download=False)
    assert choose_detector(quiet).name == "blazeface"
    strict = _settings(tmp_path, yunet_url=f"{server.url}/{YUNET.name}", model_download=False, detector="yunet")
    with pytest.raises(WeightsMissingError, match="MODEL_DOWNLOAD=false: place face_detection_yunet_2023mar.onnx"):
        choose_detector(strict)
    assert server.requests == []


def test_models_fetch_command_caches_yunet_for_offline_use(tmp_path: Path, yunet_model: Path, serve) -> None:
    server = serve(yunet_model.parent)
    cache = tmp_path / "cache"
    env = {
        "MODEL_CACHE": str(cache),
        "YUNET_URL": f"{server.url}/{YUNET.name}",
        "DEEPFACE_HOME": str(tmp_path),
        "YUNET_MODEL": "",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
    }
    first = run_producer(env, "models", "fetch")
    assert first.returncode == 0, first.stderr
    assert f"YuNet face detector: {cache / YUNET.name} (sha256 {YUNET.sha256[:16]}, downloaded)" in first.stdout
    assert "BlazeFace face detector:" in first.stdout and "emotion CNN:" in first.stdout
    again = run_producer(env, "models", "fetch")
    assert again.returncode == 0 and "present)" in again.stdout.splitlines()[0]
    assert server.requests == [f"/{YUNET.name}"]
    offline = run_producer(
        {**env, "MODEL_CACHE": str(tmp_path / "empty"), "YUNET_URL": "http://127.0.0.1:9/x"}, "models", "fetch"
    )
    assert offline.returncode == 1 and f"place {YUNET.name}" in offline.stderr
    assert "Traceback" not in offline.stderr and offline.stderr.strip().splitlines()[-1].startswith(
        "Error: YuNet face detector not downloaded (ConnectionError): place"
    )


def test_demo_samples_on_a_fresh_clone_show_no_false_face(tmp_path: Path) -> None:
    """No ../shared, no network, no cached YuNet: the demo's photos through the real
    pipeline with the offline detector; a face on every portrait, none elsewhere."""
    from emotion_batch.api import analyze
    from producer.samples import write_samples

    server_gone = "http://127.0.0.1:9/none.onnx"
    settings = _settings(tmp_path, yunet_url=server_gone, download_timeout=5)
    assert choose_detector(settings).name == "blazeface"
    paths = [p for p in write_samples(tmp_path / "samples") if p.name not in ("broken.jpg", "notes.jpg")]
    for path, faces in zip(paths, analyze([str(p) for p in paths], "cnn", settings)):
        assert len(faces) == (1 if path.parent.name == "people" else 0), (path.name, faces)


def test_the_image_bakes_every_model_file_in() -> None:
    from emotion_batch.config import REPO_ROOT

    text = (REPO_ROOT / "Dockerfile").read_text()
    assert "MODEL_CACHE=/opt/emotion-batch/models" in text
    assert text.count("RUN producer models fetch") == 2  # cpu and gpu targets


def test_every_registered_detector_has_a_setup_and_a_class() -> None:
    assert list(SETUPS) == list(DETECTORS)
    assert [detector_class(name).name for name in DETECTORS] == list(DETECTORS)
