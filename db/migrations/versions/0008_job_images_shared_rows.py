"""job_images: a job shares the finished rows of earlier jobs instead of copying them

A re-run of an unchanged folder registered one full `images` row per file (the result
copied, its faces shared through `reused_from`): a million rows into six indexes and the
counter trigger, the database growing by half each time. An unchanged file whose earlier
image is finished with a result under the same key is now one narrow (job, image) row;
every reader of a job's images reads its own rows and these (`db.members`). The job's
counters add the shared images' outcomes when they are registered (they never change:
only pending images are analysed, only failed ones retried).

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_images",
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "image_id"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("job_images")
