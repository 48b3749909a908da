"""Images that follow another job's pending image of the same content.

A job submitted while an earlier job still has the same content pending (the same folder
submitted again before the first run ended) does not queue that content a second time:
its row is registered pending with `reused_from` naming the image it follows
(db.registration._find_pending). When a worker finishes the followed image, `settle_followers`
finishes its followers in the same transaction: with its result when it was analysed as
the content they hold, else failed with the reason (`retry-failed` analyses them on their
own). A follower is an ordinary pending image of its job otherwise: `resume` of its job
queues it like any other, and whichever delivery comes first finishes it once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session

from db.schema import Image, ImageStatus, utcnow
from db.session import rows_changed
from emotion_batch.paths import storable

PENDING = ImageStatus.PENDING.value
FINISHED = (ImageStatus.DONE.value, ImageStatus.NO_FACE.value)
RESULT_COLUMNS = ("width", "height", "taken_at", "face_count", "backend", "model_version", "detector")


def settle_followers(session: Session, image_ids: Sequence[int]) -> int:
    """Finish the pending followers of those of `image_ids` (at most a few hundred: one
    statement's variables) that are finished now; return how many. Runs in the caller's
    transaction, after its own writes, so the followers finish with the images they follow."""
    if not image_ids:
        return 0
    images = cast(Table, Image.__table__)
    origin = images.alias("origin")
    rows = session.execute(
        select(
            images.c.id,
            images.c.sha256.label("content"),
            origin.c.id.label("origin"),
            func.coalesce(origin.c.reused_from, origin.c.id).label("result_of"),
            origin.c.sha256,
            origin.c.status,
            origin.c.error,
            *(origin.c[name] for name in RESULT_COLUMNS),
        )
        .join(origin, origin.c.id == images.c.reused_from)
        .where(images.c.reused_from.in_(list(image_ids)), images.c.status == PENDING, origin.c.status != PENDING)
    ).all()
    now = utcnow()
    settled = 0
    for row in rows:
        if row.status in FINISHED and row.sha256 == row.content:
            values: dict[str, object] = {name: getattr(row, name) for name in RESULT_COLUMNS}
            values |= {"status": row.status, "error": None, "reused_from": row.result_of}
        else:
            why = f"failed: {row.error}" if row.status not in FINISHED else "found the file changed before analysing it"
            reason = f"shares its content with image {row.origin} of another job, which {why}"
            values = {"status": ImageStatus.FAILED.value, "error": storable(reason), "reused_from": None}
        settled += rows_changed(
            session.execute(
                update(images)
                .where(images.c.id == row.id, images.c.status == PENDING)
                .values(processed_at=now, claimed_by=None, lease_until=None, **values)
            )
        )
    return settled
