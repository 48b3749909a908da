"""The Celery worker: `celery -A worker worker` and `celery -A worker flower`.

Importing this package builds the Celery app only; models are loaded in each worker
process after the fork (`worker_process_init`), never in the parent.
"""

from worker.app import app

__all__ = ["app"]
