"""one index on images' content: unique (sha256, job_id) instead of (job_id, sha256) + (sha256)

Every content look-up is led by the hash (the job's own copy, an earlier result to
reuse, a shared image, a worker's changed file), so one unique index on (sha256, job_id)
answers them all and keeps one image per content per job. The two it replaces were the
only b-trees of `images` keyed by a random value: each registered file dirtied a page
of both, and at a million images (two indexes of about 110 MB each) most of a submit's
commit time was writing those pages back. Measured with `producer submit` of a million
3 KB files on 2 cores: 130.8 s with both, 111.5 s with one (the same files, page cache
warm, minutes apart).

SQLite cannot drop a table's UNIQUE constraint in place: the table is rebuilt (Alembic's
batch mode; env.py turns foreign keys off while migrating, so the rebuild does not cascade
into `faces`) and 0004's counter triggers, dropped with the old table, are created again.

Revision ID: 0009
Revises: 0008
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _revision_0004() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "revision_0004", Path(__file__).with_name("0004_job_counts_scan_progress.py")
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sqlite_triggers_again() -> None:
    """A rebuilt SQLite table has lost its triggers: 0004's, as they are."""
    if op.get_bind().dialect.name == "sqlite":
        for statement in _revision_0004().SQLITE_TRIGGERS:
            op.execute(statement)


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.create_unique_constraint("uq_images_sha256_job", ["sha256", "job_id"])
        batch.drop_constraint("uq_images_job_sha256", type_="unique")
        batch.drop_index("ix_images_sha256")
    _sqlite_triggers_again()


def downgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.create_unique_constraint("uq_images_job_sha256", ["job_id", "sha256"])
        batch.create_index("ix_images_sha256", ["sha256"])
        batch.drop_constraint("uq_images_sha256_job", type_="unique")
    _sqlite_triggers_again()
