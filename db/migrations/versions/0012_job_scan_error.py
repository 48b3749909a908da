"""jobs.scan_error: why a job's background scan stopped

A job submitted over HTTP is scanned in the background after the request answered; when
that scan failed (Redis refusing writes, a database error) the job stayed "scanning" for
ever with nothing said. The reason is now recorded on the job (cleared when `resume`
finishes the scan) and shown by the API, the job page and `producer status`.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("scan_error", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("scan_error")
