"""Settings come from the environment with documented defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from emotion_batch.config import Settings
from models.settings import DataSettings


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
    for name in [*Settings.model_fields, *DataSettings.model_fields]:
        assert name.upper() in example, name


def test_every_setting_belongs_to_exactly_one_concern() -> None:
    groups = [base for base in Settings.__bases__ if issubclass(base, BaseSettings)]
    names = [name for group in groups for name in group.model_fields]
    assert len(groups) >= 8 and len(names) == len(set(names))
    assert sorted(names) == sorted(Settings.model_fields)


def test_unknown_backend_and_detector_are_refused() -> None:
    with pytest.raises(ValidationError, match="unknown backend 'x'; choose one of cnn, deepface"):
        Settings(_env_file=None, worker_backends=["cnn", "x"])
    with pytest.raises(ValidationError, match="'auto', 'yunet', 'blazeface', 'haar' or 'skip'"):
        Settings(_env_file=None, detector="mtcnn")


def test_library_defaults_name_no_build_machine_layout(monkeypatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    values = Settings(_env_file=None).model_dump().values()
    assert not [value for value in values if "shared" in str(value)]


def test_training_data_follows_shared_data(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SHARED_DATA", str(tmp_path))
    assert DataSettings(_env_file=None).fer2013_dir == tmp_path / "fer2013"
    monkeypatch.setenv("FER2013_DIR", str(tmp_path / "elsewhere"))
    assert DataSettings(_env_file=None).fer2013_dir == tmp_path / "elsewhere"
