"""The in-process API on real photos with the real DeepFace-architecture weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from emotion_batch.api import analyze
from emotion_batch.config import Settings
from emotion_batch.labels import EMOTIONS


def test_analyze_returns_deepface_terms(
    photos_dir: Path, deepface_home: Path, yunet_model: Path, tmp_path: Path
) -> None:
    (tmp_path / "x.jpg").write_text("not an image")
    settings = Settings(_env_file=None, deepface_home=deepface_home, yunet_model=yunet_model)
    paths = [photos_dir / "couple.jpg", photos_dir / "img1.jpg", tmp_path / "x.jpg"]
    couple, single, bad = analyze(paths, backend="deepface", settings=settings, batch_size=2)
    assert len(couple) == 2 and len(single) == 1
    assert bad == {"error": "not an image: content is not a known image format"}
    for face in couple + single:
        assert set(face) == {"emotion", "dominant_emotion", "region", "face_confidence"}
        assert set(face["emotion"]) == set(EMOTIONS)
        assert sum(face["emotion"].values()) == pytest.approx(100.0)
        assert face["dominant_emotion"] == max(face["emotion"], key=face["emotion"].get)
        assert set(face["region"]) == {"x", "y", "w", "h"} and 0 < face["face_confidence"] <= 1


def test_skip_classifies_face_crops_exactly_as_the_served_classifier(shared_data: Path) -> None:
    """DETECTOR=skip on FER2013 test faces (48x48 crops, as the model was trained on): each
    image is one face whose box is the whole image, and its percentages are the served
    classifier's (views, ensemble, calibration as configured) on that very face."""
    import cv2
    import numpy as np

    from emotion_batch.classify import make_classifier, normalise

    test = shared_data / "fer2013" / "test"
    paths = [path for emotion in EMOTIONS for path in sorted((test / emotion).glob("*.png"))[:5]]
    assert len(paths) == 35
    settings = Settings(_env_file=None, detector="skip")
    results = analyze(paths, backend="cnn", settings=settings)
    faces = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths])[..., None]
    expected = normalise(make_classifier("cnn", settings).predict(faces)) * 100.0
    assert all(isinstance(r, list) and len(r) == 1 for r in results)
    got = np.array([[r[0]["emotion"][e] for e in EMOTIONS] for r in results])
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert all(r[0]["region"] == {"x": 0, "y": 0, "w": 48, "h": 48} for r in results)
    correct = sum(r[0]["dominant_emotion"] == p.parent.name for r, p in zip(results, paths))
    assert correct >= 12  # far above chance (5 of 35), whichever model is served


def test_offline_analyze_gives_each_image_its_own_outcome(tmp_path: Path) -> None:
    """No YuNet to be had (DETECTOR=auto falls back to BlazeFace): an image whose only face
    is below MIN_FACE (it once raised for the whole call), a portrait and a text file each
    get their own answer."""
    import cv2
    from PIL import Image as PILImage

    from bench.detect import _skimage
    from emotion_batch.detect import choose_detector

    (tmp_path / "home").mkdir()
    settings = Settings(
        _env_file=None,
        model_cache=tmp_path / "cache",
        deepface_home=tmp_path / "home",
        yunet_url="http://127.0.0.1:9/none.onnx",
        download_timeout=5,
    )
    assert choose_detector(settings).name == "blazeface"
    astronaut = _skimage("astronaut")
    PILImage.fromarray(cv2.resize(astronaut, (100, 100), interpolation=cv2.INTER_AREA)).save(tmp_path / "small.png")
    PILImage.fromarray(astronaut).save(tmp_path / "astronaut.png")
    (tmp_path / "notes.jpg").write_text("not an image")
    paths = [tmp_path / name for name in ("small.png", "astronaut.png", "notes.jpg")]
    small, portrait, text = analyze(paths, "cnn", settings)
    assert small == [] and isinstance(portrait, list) and len(portrait) == 1
    assert text == {"error": "not an image: content is not a known image format"}
