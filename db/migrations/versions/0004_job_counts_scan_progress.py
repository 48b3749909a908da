"""per-job counters kept by triggers, scan progress, indexes for re-runs and progress

`job_counts` holds one row per job (images per status and faces found), kept exact by
triggers on `images` in the same transaction as every insert, status change and delete,
so progress is one primary-key read at any job size and stays right under concurrent
workers (PostgreSQL row lock on the job's counter row; SQLite has one writer). One row
per job means one lock per job: no deadlock between counters.
`jobs.scanned` / `jobs.scan_complete` let `producer resume` finish an interrupted submit;
`ix_images_path` finds an earlier image of the same path (hash reuse on re-runs) and
`ix_images_job_processed` answers "last processed" of a job without a scan. Three indexes
no query needs any more go (each cost every insert and status change): images.status and
images.processed_at alone (progress reads the counters; per job, the new index), and
images.job_id alone (the first column of two other indexes).

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = ("pending", "done", "no_face", "failed")
REDUNDANT = ("ix_images_job_id", "ix_images_status", "ix_images_processed_at")

SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER images_count_insert AFTER INSERT ON images BEGIN
    INSERT INTO job_counts (job_id, {", ".join(STATUSES)}, faces)
    VALUES (NEW.job_id, {", ".join(f"NEW.status = '{s}'" for s in STATUSES)}, coalesce(NEW.face_count, 0))
    ON CONFLICT (job_id) DO UPDATE SET {", ".join(f"{s} = {s} + excluded.{s}" for s in STATUSES)},
    faces = faces + excluded.faces;
    END""",
    f"""CREATE TRIGGER images_count_update AFTER UPDATE OF status, face_count ON images
    WHEN OLD.status IS NOT NEW.status OR OLD.face_count IS NOT NEW.face_count BEGIN
    UPDATE job_counts SET {", ".join(f"{s} = {s} + (NEW.status = '{s}') - (OLD.status = '{s}')" for s in STATUSES)},
    faces = faces + coalesce(NEW.face_count, 0) - coalesce(OLD.face_count, 0) WHERE job_id = NEW.job_id;
    END""",
    f"""CREATE TRIGGER images_count_delete AFTER DELETE ON images BEGIN
    UPDATE job_counts SET {", ".join(f"{s} = {s} - (OLD.status = '{s}')" for s in STATUSES)},
    faces = faces - coalesce(OLD.face_count, 0) WHERE job_id = OLD.job_id;
    END""",
]

POSTGRES_TRIGGERS = [
    f"""CREATE FUNCTION images_count() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE job_counts SET {", ".join(f"{s} = {s} - (OLD.status = '{s}')::int" for s in STATUSES)},
          faces = faces - coalesce(OLD.face_count, 0) WHERE job_id = OLD.job_id;
      END IF;
      IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO job_counts (job_id, {", ".join(STATUSES)}, faces)
        VALUES (NEW.job_id, {", ".join(f"(NEW.status = '{s}')::int" for s in STATUSES)}, coalesce(NEW.face_count, 0))
        ON CONFLICT (job_id) DO UPDATE SET {", ".join(f"{s} = job_counts.{s} + EXCLUDED.{s}" for s in STATUSES)},
          faces = job_counts.faces + EXCLUDED.faces;
      END IF;
      RETURN NULL;
    END $$""",
    """CREATE TRIGGER images_count AFTER INSERT OR DELETE ON images
    FOR EACH ROW EXECUTE FUNCTION images_count()""",
    """CREATE TRIGGER images_count_update AFTER UPDATE OF status, face_count ON images
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.face_count IS DISTINCT FROM NEW.face_count)
    EXECUTE FUNCTION images_count()""",
]

BACKFILL = f"""INSERT INTO job_counts (job_id, {", ".join(STATUSES)}, faces)
SELECT jobs.id, {", ".join(f"coalesce(sum(CASE WHEN images.status = '{s}' THEN 1 ELSE 0 END), 0)" for s in STATUSES)},
coalesce(sum(coalesce(images.face_count, 0)), 0)
FROM jobs LEFT JOIN images ON images.job_id = jobs.id GROUP BY jobs.id"""


def upgrade() -> None:
    op.create_table(
        "job_counts",
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        *(sa.Column(s, sa.Integer(), nullable=False, server_default="0") for s in STATUSES),
        sa.Column("faces", sa.Integer(), nullable=False, server_default="0"),
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("scanned", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("scan_complete", sa.Boolean(), nullable=False, server_default=sa.true()))
    op.create_index("ix_images_job_processed", "images", ["job_id", "processed_at"])
    op.create_index("ix_images_path", "images", ["path"])
    for name in REDUNDANT:
        op.drop_index(name, "images")
    op.execute(BACKFILL)
    triggers = POSTGRES_TRIGGERS if op.get_bind().dialect.name == "postgresql" else SQLITE_TRIGGERS
    for statement in triggers:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS images_count_update ON images")
        op.execute("DROP TRIGGER IF EXISTS images_count ON images")
        op.execute("DROP FUNCTION IF EXISTS images_count()")
    else:
        for name in ("images_count_insert", "images_count_update", "images_count_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.create_index("ix_images_job_id", "images", ["job_id"])
    op.create_index("ix_images_status", "images", ["status"])
    op.create_index("ix_images_processed_at", "images", ["processed_at"])
    op.drop_index("ix_images_path", "images")
    op.drop_index("ix_images_job_processed", "images")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("scan_complete")
        batch.drop_column("scanned")
    op.drop_table("job_counts")
