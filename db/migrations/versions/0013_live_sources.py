"""videos.source, frames.captured_at: live sources

A live source (a camera, an RTSP or HTTP MJPEG stream) is one video of its job: its
`source` is what was opened (NULL for a video file) and each sampled frame keeps the
wall-clock moment it was captured beside its seconds since the start.

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("videos", sa.Column("source", sa.Text(), nullable=True))
    op.add_column("frames", sa.Column("captured_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("frames") as batch:
        batch.drop_column("captured_at")
    with op.batch_alter_table("videos") as batch:
        batch.drop_column("source")
