"""Settings come from the environment with documented defaults."""

from __future__ import annotations

from pathlib import Path

from emotion_batch.config import Settings


def test_defaults() -> None:
    s = Settings(_env_file=None)
    assert s.database_url.startswith("sqlite:///") and s.backend == "cnn" and s.batch_size == 32
    assert s.visibility_timeout > s.hard_time_limit > s.soft_time_limit


def test_environment_overrides(monkeypatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://:secret@example:6380/2")
    monkeypatch.setenv("BATCH_SIZE", "7")
    monkeypatch.setenv("WORKER_BACKENDS", '["cnn","deepface"]')
    monkeypatch.setenv("ALLOWED_ROOTS", '["/photos"]')
    s = Settings(_env_file=None)
    assert s.redis_url == "redis://:secret@example:6380/2" and s.batch_size == 7
    assert s.worker_backends == ["cnn", "deepface"] and s.allowed_roots == [Path("/photos")]


def test_env_example_documents_every_setting() -> None:
    example = (Path(__file__).parent.parent / ".env.example").read_text()
    for name in Settings.model_fields:
        assert name.upper() in example, name
