"""Where training and evaluation find their data: read from the environment (or `.env`)
like the library's settings, with this build's layout as the default, never the library's.

The data that cannot be downloaded on the build machines (FER2013, DeepFace's weights)
sits in `../shared/data` beside the checkout; SHARED_DATA points elsewhere.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from emotion_batch.defaults import REPO_ROOT

SHARED_DATA = (REPO_ROOT.parent / "shared" / "data").resolve()


class DataSettings(BaseSettings):
    """FER2013, its decoded cache, and the shared data folder they default from."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    shared_data: Path = Field(SHARED_DATA, description="Data the build machines cannot download.")
    fer2013_dir: Path = Field(
        default_factory=lambda fields: Path(fields["shared_data"]) / "fer2013",
        description="FER2013 image folders (train/, test/) for training and evaluation.",
    )
    emotion_batch_cache: Path = Field(
        Path.home() / ".cache" / "emotion-batch",
        description="Cache of decoded FER2013 arrays (outside the repository).",
    )


@lru_cache(maxsize=1)
def data_settings() -> DataSettings:
    """The process-wide data settings, read once from the environment."""
    return DataSettings()
