"""Every default value of emotion-batch, in one documented place (rq's `defaults.py` shape).

`emotion_batch.config.Settings` reads the environment (or `.env`) once and falls back to
these; nothing else reads `os.environ` or repeats a default. `.env.example` documents
the same values for users.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The checkout (or installed tree) holding emotion_batch/, models/, worker/ ..."""

REDIS_URL = "redis://127.0.0.1:6379/0"
"""Broker used by workers and commands when REDIS_URL is unset (`producer run` starts its own)."""

DATABASE_URL = "sqlite:///emotion-batch.db"
BACKEND = "cnn"
WORKER_BACKENDS: tuple[str, ...] = (BACKEND,)
"""Backends a worker process loads when it starts (others load on first use)."""
BATCH_SIZE = 32
QUEUE = "emotion"

CNN_MODEL = REPO_ROOT / "models" / "emotion_cnn.keras"
"""Our committed Keras model (its .tflite export sits next to it)."""

DEEPFACE_HOME = Path.home()
"""DeepFace keeps its weights in $DEEPFACE_HOME/.deepface/weights (its own default: ~)."""

DETECTOR = "auto"
"""YuNet when its file is here or can be downloaded, else BlazeFace (emotion_batch.detect)."""
MODEL_DOWNLOAD = True
DOWNLOAD_TIMEOUT = 20.0
DETECT_MAX_SIDE = 640
DETECT_FIRST_SIDE = 320  # YuNet's first, coarse pass (emotion_batch/detect/yunet.py)
DECODE_MAX_SIDE = 800
# Face crops: chosen on FER2013 test faces pasted into scenes and run through the real
# detect -> crop -> classify path (`python -m bench.pasted`, table in models/README.md).
FACE_MARGIN = 1.0
FACE_ALIGN = True
MIN_FACE = 24
FACE_SCORE = 0.7
MAX_PIXELS = 40_000_000
MAX_FILE_BYTES = 100_000_000
MAX_ATTEMPTS = 3
SOFT_TIME_LIMIT = 300
HARD_TIME_LIMIT = 360
MAX_MEMORY_PER_CHILD_KB = 4_000_000
TF_THREADS = 0
"""Threads per worker process; 0: the cores divided by the worker's concurrency."""

# Videos: frames sampled per second, seconds of video per task (what a killed worker
# loses at most), and the longest video analysed.
VIDEO_FPS = 1.0
VIDEO_SEGMENT_SECONDS = 60.0
VIDEO_MAX_SECONDS = 4 * 3600.0

# The web service: deadlines on what clients send (slowloris, stalled uploads), and how
# long browsers may keep photos and face crops (0: never stored).
WEB_HEADER_TIMEOUT = 10.0
WEB_BODY_TIMEOUT = 30.0
WEB_KEEP_ALIVE = 5
WEB_MAX_CONNECTIONS = 1000
WEB_CACHE_PHOTOS = 0

# Uploads to the web service: where they are stored, and the limits of one request.
UPLOAD_ROOT = Path("emotion-batch-uploads")
MAX_UPLOAD_BYTES = 500_000_000
MAX_UPLOAD_FILES = 1000
MAX_ZIP_BYTES = 2_000_000_000

# Live sources (`producer live`, POST /api/jobs/live): where sampled frames wait for the
# workers, how long a dropped source is tried again, and which sources the web service
# may open (besides local cameras: no URL unless listed).
LIVE_ROOT = Path("emotion-batch-live")
LIVE_REOPEN_SECONDS = 60.0
LIVE_SOURCES: tuple[str, ...] = ()

YUNET_URL = (
    "https://github.com/opencv/opencv_zoo/raw/fef72f8fa7c52eaf116d3df358d24e6e959ada0e/"
    "models/face_detection_yunet/face_detection_yunet_2023mar.onnx"
)
"""opencv_zoo at a fixed commit: YuNet's 2023mar release file (sha256 pinned in emotion_batch.detect.fetch)."""


def model_cache() -> Path:
    """Folder for downloaded model files: pooch's per-user cache (~/.cache/emotion-batch on Linux)."""
    import pooch

    return Path(pooch.os_cache("emotion-batch"))
