"""Which images belong to a job: the rows it registered (`images.job_id`) and the
finished rows of earlier jobs it shares (`job_images`: files unchanged since, whose
results it reuses as they are). Every reader of a job's images selects them here."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, exists, or_, select

from db.schema import Image, JobImage


def shared_ids(job_id: int):  # noqa: ANN201 (a Select)
    """Ids of the earlier images `job_id` shares."""
    return select(JobImage.image_id).where(JobImage.job_id == job_id)


def in_job(job_id: int, columns: Any = Image) -> ColumnElement[bool]:
    """The condition "this image is one of `job_id`'s" for a whole-job read (reports,
    exports): its own rows by index, the shared ones by primary key from one list.
    `columns`: the Image class or a table alias's `.c`."""
    return or_(columns.job_id == job_id, columns.id.in_(shared_ids(job_id)))


def one_of_job(job_id: Any, columns: Any = Image) -> ColumnElement[bool]:
    """The same condition for a look-up of a few images (a content, an id): each shared
    image checked by its own primary-key probe, never the job's whole list. `job_id` may
    be a SQL expression (a correlated job)."""
    # correlated to whatever encloses it, however deep (only job_images is its own)
    shared = exists().where(JobImage.job_id == job_id, JobImage.image_id == columns.id).correlate_except(JobImage)
    return or_(columns.job_id == job_id, shared)
