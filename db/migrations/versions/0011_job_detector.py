"""jobs.detector: the face detector a job asked for (`producer submit --detector`)

A job names its backend; the detector was always each worker's own DETECTOR setting. A
folder of face crops needs `skip` (no detection) for its job alone, whatever the workers'
setting, and `resume`/`retry-failed` must send the same choice again: the job records it.
NULL (every job before this revision, and jobs without `--detector`): the workers' setting.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("detector", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("detector")
