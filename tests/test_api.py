"""The in-process API on real photos with the real DeepFace-architecture weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from emotion_batch.api import analyze
from emotion_batch.config import Settings
from models.labels import EMOTIONS


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
