"""the detector (name + model file hash) on every image and face

Results of different detectors must never stand in for each other: `images.detector`
joins the key that decides reuse (db.results.ResultKey). Rows analysed before this
revision keep NULL (the detector that found their faces was not recorded) and so are
never reused for new analyses.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("detector", sa.String(length=80), nullable=True))
    with op.batch_alter_table("faces") as batch:
        batch.add_column(sa.Column("detector", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("faces") as batch:
        batch.drop_column("detector")
    with op.batch_alter_table("images") as batch:
        batch.drop_column("detector")
