"""index (job_id, status, id): resume's pages of pending images without sorting the job

`producer resume` reads a job's pending images a page at a time (keyset on id). Without
this index SQLite searched the job's rows by (job_id, processed_at) and sorted them for
every page: 0.8 s a page at 1M images, so the whole resume grew with the square of the
job. It also serves "the first failed images" of `status` and `retry-failed`. Inserts
append to it (a job's new rows are pending with rising ids).

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_images_job_status", "images", ["job_id", "status", "id"])


def downgrade() -> None:
    op.drop_index("ix_images_job_status", "images")
