"""In-process batch analysis for notebooks and scripts, without Redis or a database.

    from emotion_batch.api import analyze
    results = analyze(["a.jpg", "b.jpg"], backend="deepface")
    results[0][0]["dominant_emotion"], results[0][0]["emotion"]["happy"]

Each image gives a list of per-face dicts in `DeepFace.analyze` terms (emotion
percentages summing to 100, dominant_emotion, region, face_confidence); an image that
cannot be analysed gives `{"error": reason}` instead of a list (the other images of its
batch are analysed all the same).

Images that already are face crops (FER2013, crops made elsewhere): each one face, no
detection, `analyze(paths, settings=Settings(detector="skip"))`.
"""

from __future__ import annotations

from collections.abc import Sequence

from emotion_batch.config import Settings, get_settings
from emotion_batch.pipeline import Analyzer

_analyzers: dict[tuple[str, str], Analyzer] = {}


def _analyzer(backend: str, settings: Settings) -> Analyzer:
    """One analyzer (models loaded once) per backend and settings."""
    key = (backend, settings.model_dump_json())
    if key not in _analyzers:
        _analyzers[key] = Analyzer.from_settings(settings, backend)
    return _analyzers[key]


def analyze(
    paths: Sequence[str], backend: str = "cnn", settings: Settings | None = None, batch_size: int = 64
) -> list[list[dict] | dict]:
    """Analyse images in batches (one classifier call per batch); models load once."""
    settings = settings or get_settings()
    analyzer = _analyzer(backend, settings)
    out: list[list[dict] | dict] = []
    for start in range(0, len(paths), batch_size):
        for result in analyzer.analyze([str(p) for p in paths[start : start + batch_size]]):
            out.append({"error": result.error} if result.error else [f.to_deepface() for f in result.faces])
    return out
