# emotion-batch image: producer, Celery worker and Flower in one image.
# Two targets:
#   docker build --target cpu -t emotion-batch:cpu .
#   docker build --target gpu -t emotion-batch:gpu .   (CUDA libraries from tensorflow[and-cuda];
#                                                       the host needs the NVIDIA driver and
#                                                       the NVIDIA Container Toolkit)
# docker-compose.yml picks the target with IMAGE_VARIANT (default gpu).

FROM python:3.11-slim-bookworm AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    MALLOC_ARENA_MAX=2 \
    MODEL_CACHE=/opt/emotion-batch/models
# libgomp1: OpenMP for OpenCV/TensorFlow; libglib2.0-0: OpenCV contrib's runtime.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 1000 emotion \
 && mkdir /data && chown emotion /data  # Flower's state volume
WORKDIR /app
# Dependencies first, read from pyproject.toml (cached while only the code changes).
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt

FROM base AS cpu
COPY . .
# Editable: the code, models/emotion_cnn.keras and db/migrations stay in /app (REPO_ROOT).
RUN pip install --no-deps -e . && chown -R emotion /app
# Every model file in the image (YuNet into MODEL_CACHE, sha256-checked): workers need no network.
RUN producer models fetch
USER emotion
CMD ["celery", "-A", "worker", "worker", "-E", "--loglevel", "INFO", "--hostname", "worker@%h"]

FROM base AS gpu
RUN pip install "tensorflow[and-cuda]>=2.16,<2.22"
COPY . .
# Editable: the code, models/emotion_cnn.keras and db/migrations stay in /app (REPO_ROOT).
RUN pip install --no-deps -e . && chown -R emotion /app
# Every model file in the image (YuNet into MODEL_CACHE, sha256-checked): workers need no network.
RUN producer models fetch
USER emotion
CMD ["celery", "-A", "worker", "worker", "-E", "--loglevel", "INFO", "--hostname", "worker@%h"]
