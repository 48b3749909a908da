"""unbounded job names; submitted hash of changed files; per-image delivery leases

- jobs.name becomes TEXT: a job is named after its first path by default, and paths
  have no length limit (PostgreSQL refused names over 200 characters; SQLite never
  enforced the limit, so its table is left alone rather than rebuilt).
- images.submitted_sha256: the hash at submit when the worker found the file changed.
- images.claimed_by / lease_until: the task analysing an image and until when, so a
  concurrent `resume` leaves a busy image to it instead of using up its attempts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("jobs", "name", type_=sa.Text(), existing_type=sa.String(length=200), existing_nullable=False)
    op.add_column("images", sa.Column("submitted_sha256", sa.String(length=64), nullable=True))
    op.add_column("images", sa.Column("claimed_by", sa.Text(), nullable=True))
    op.add_column("images", sa.Column("lease_until", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_column("lease_until")
        batch_op.drop_column("claimed_by")
        batch_op.drop_column("submitted_sha256")
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("jobs", "name", type_=sa.String(length=200), existing_type=sa.Text(), existing_nullable=False)
