"""Worker-side writes: attempt counting, reuse of earlier results, storing a batch.

Every write is guarded by `status = 'pending'`, so a redelivered or duplicated batch
never adds a second outcome, and faces have a unique (image_id, face_index). Every
query over a list of ids or hashes runs in chunks (SQLite allows 32,766 variables per
statement), and only ever touches images of the job a message names.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.orm import Session

from db.followers import settle_followers
from db.members import one_of_job
from db.schema import Face, Image, ImageStatus, JobCounts, utcnow
from db.session import checkpoint, rows_changed
from emotion_batch.labels import EMOTIONS
from emotion_batch.messages import chunked
from emotion_batch.paths import from_db, storable
from emotion_batch.pipeline import FaceResult, ImageResult

PENDING = ImageStatus.PENDING.value
CHUNK = 500  # ids per statement: far below SQLite's 32,766 variables, few round trips


@dataclass(frozen=True)
class Claim:
    """The images of a batch still to analyse, those given up on, and those another
    delivery is analysing right now (left to it, no attempt counted)."""

    live: dict[int, tuple[str, str]]  # image id -> (path, sha256 at submit)
    exhausted: list[int]
    busy: list[int] = field(default_factory=list)


def claim_attempt(
    session: Session,
    image_ids: Sequence[int],
    max_attempts: int,
    job_id: int | None = None,
    owner: str | None = None,
    lease_seconds: float = 0.0,
) -> Claim:
    """Count one more delivery for the pending images; fail those past the limit.

    Runs in its own committed transaction before any work, so a batch that kills its
    process still has its attempts counted when it is redelivered. With `owner` (the
    Celery task id), each claimed image is leased to it for `lease_seconds`: another
    task's delivery (a concurrent `resume`) skips an image leased to someone else
    instead of using up its attempts; a redelivery of the same task takes it over.
    """
    now = time.time()
    rows: list[Any] = []  # Rows of the select below
    for part in chunked(image_ids, CHUNK):
        query = select(Image.id, Image.path, Image.sha256, Image.attempts, Image.claimed_by, Image.lease_until).where(
            Image.id.in_(part), Image.status == PENDING
        )
        if job_id is not None:
            query = query.where(Image.job_id == job_id)
        rows += session.execute(query).all()

    def leased_to_other(r) -> bool:  # noqa: ANN001 (a Row)
        return bool(owner and r.claimed_by and r.claimed_by != owner and (r.lease_until or 0) > now)

    busy = [r.id for r in rows if leased_to_other(r)]
    free = [r for r in rows if not leased_to_other(r)]
    exhausted = [r.id for r in free if r.attempts >= max_attempts]
    wanted = {r.id: (from_db(r.path), r.sha256) for r in free if r.attempts < max_attempts}
    if exhausted:
        reason = f"gave up after {max_attempts} attempts (worker killed or timed out each time)"
        _mark(session, exhausted, status=ImageStatus.FAILED.value, error=reason)
    live = {}
    for part in chunked(list(wanted), CHUNK):
        claim = update(Image).where(Image.id.in_(part), Image.status == PENDING)
        if owner:  # taken only if nobody else took it meanwhile
            claim = claim.where(or_(Image.claimed_by.is_(None), Image.claimed_by == owner, Image.lease_until <= now))
        session.execute(
            claim.values(
                attempts=Image.attempts + 1, claimed_by=owner, lease_until=now + lease_seconds if owner else None
            )
        )
        if owner:
            taken = session.scalars(select(Image.id).where(Image.id.in_(part), Image.claimed_by == owner))
            live.update({i: wanted[i] for i in taken})
        else:
            live.update({i: wanted[i] for i in part})
    busy += [i for i in wanted if i not in live]
    for part in chunked(exhausted, CHUNK):  # last, after every claim (see db.followers)
        settle_followers(session, part)
    session.commit()
    return Claim(live, exhausted, busy)


def pending_attempts(session: Session, image_ids: Sequence[int], job_id: int | None = None) -> dict[int, int]:
    """Attempts so far of the still-pending images among `image_ids` (of `job_id` only)."""
    found: dict[int, int] = {}
    for part in chunked(image_ids, CHUNK):
        query = select(Image.id, Image.attempts).where(Image.id.in_(part), Image.status == PENDING)
        if job_id is not None:
            query = query.where(Image.job_id == job_id)
        found.update(session.execute(query).all())
    return found


def _mark(session: Session, ids: Sequence[int], **values: object) -> int:
    count = 0
    for part in chunked(ids, CHUNK):
        result = session.execute(
            update(Image)
            .where(Image.id.in_(part), Image.status == PENDING)
            .values(processed_at=utcnow(), claimed_by=None, lease_until=None, **values)
        )
        count += rows_changed(result)
    return count


def fail_images(session: Session, ids: Sequence[int], reason: str) -> int:
    """Record `reason` against still-pending images (one transaction)."""
    count = _mark(session, ids, status=ImageStatus.FAILED.value, error=storable(reason))
    for part in chunked(ids, CHUNK):
        settle_followers(session, part)
    session.commit()
    return count


@dataclass(frozen=True)
class ResultKey:
    """What, besides the content (sha256), a stored result must share to be reused: the
    backend, the classifier's model version and the detector with its model file hash
    (e.g. `yunet-8f2383e4dd3cfbb4`), so results of different detectors never stand in for
    each other."""

    backend: str
    model_version: str
    detector: str


def reusable_filter(columns, key: ResultKey) -> tuple:  # noqa: ANN001 (Image or a table alias's columns)
    """The conditions an earlier image meets to lend its result under `key`: analysed by
    the same backend, model version and detector, finished with a result, and itself an
    original (not a reuse). `columns`: the Image class or an alias's `.c`."""
    return (
        columns.backend == key.backend,
        columns.model_version == key.model_version,
        columns.detector == key.detector,
        columns.status.in_((ImageStatus.DONE.value, ImageStatus.NO_FACE.value)),
        columns.reused_from.is_(None),
    )


def shareable_filter(columns, key: ResultKey) -> tuple:  # noqa: ANN001 (as reusable_filter)
    """The conditions an earlier image meets to be shared as it is by a later job under
    `key` (`job_images`: a file unchanged since): `reusable_filter`'s but "an original",
    since a reused result shows the same faces."""
    return reusable_filter(columns, key)[:-1]


def reusable(session: Session, sha256s: Sequence[str], key: ResultKey) -> dict[str, Image]:
    """Earlier analysed images with the same content and the same `key`: the one rule
    deciding reuse, at submit time and in the worker."""
    rows = [
        image
        for part in chunked(sorted(set(sha256s)), CHUNK)
        for image in session.scalars(
            select(Image).where(Image.sha256.in_(part), *reusable_filter(Image, key)).order_by(Image.id)
        ).all()
    ]
    found: dict[str, Image] = {}
    for image in rows:
        found.setdefault(image.sha256, image)
    return found


def face_values(face: FaceResult, index: int) -> dict[str, object]:
    """The columns every stored face has (`db.schema.FaceColumns`): its place in the image,
    its box, the detector's confidence, the percentages and the dominant emotion."""
    box = face.box
    row: dict[str, object] = {
        "face_index": index,
        "x": box.x,
        "y": box.y,
        "w": box.w,
        "h": box.h,
        "confidence": box.confidence,
        "dominant": face.dominant,
    }
    row.update({emotion: float(face.emotions[emotion]) for emotion in EMOTIONS})
    return row


def _face_rows(image_id: int, result: ImageResult, key: ResultKey) -> list[dict]:
    return [
        {
            "image_id": image_id,
            **face_values(face, index),
            "backend": key.backend,
            "model_version": key.model_version,
            "detector": key.detector,
        }
        for index, face in enumerate(result.faces)
    ]


def _outcome(result: ImageResult) -> dict[str, object]:
    if result.error:
        return {"status": ImageStatus.FAILED.value, "error": storable(result.error)}
    status = ImageStatus.DONE if result.faces else ImageStatus.NO_FACE
    return {
        "status": status.value,
        "error": None,
        "width": result.width,
        "height": result.height,
        "taken_at": result.taken_at,
        "face_count": len(result.faces),
    }


def _same_content_in_job(session: Session, image_id: int, sha256: str) -> int | None:
    """Another image of `image_id`'s job (its own or shared) with content `sha256`, if any."""
    job = select(Image.job_id).where(Image.id == image_id).scalar_subquery()
    return session.scalar(
        select(Image.id).where(Image.sha256 == sha256, one_of_job(job, Image), Image.id != image_id).limit(1)
    )


def store_results(
    session: Session,
    results: dict[int, ImageResult],
    key: ResultKey,
    reused: dict[int, Image] | None = None,
    submitted: dict[int, str] | None = None,
) -> int:
    """Write a batch's outcomes and faces in one transaction; return images written.

    `submitted` holds each image's sha256 from submit time. A result read from different
    bytes (the file changed since) is stored under the hash of what was analysed, the
    submitted one kept in `submitted_sha256`; if that new content is already another
    image of the same job, the image is failed as changed rather than counted twice.
    """
    reused = reused or {}
    submitted = submitted or {}
    written, faces = 0, []
    for image_id, result in results.items():
        source = reused.get(image_id)
        values = _outcome(result) | {
            "backend": key.backend,
            "model_version": key.model_version,
            "detector": key.detector,
            "reused_from": source.id if source else None,
        }
        before = submitted.get(image_id)
        if result.sha256 and before and result.sha256 != before:
            twin = _same_content_in_job(session, image_id, result.sha256)
            if twin is None:
                values |= {"sha256": result.sha256, "submitted_sha256": before}
            else:
                reason = f"file changed after submit: its content is now that of image {twin} of this job"
                values = {"status": ImageStatus.FAILED.value, "error": storable(reason), "submitted_sha256": before}
                result = ImageResult(result.path, reason)
        if _mark(session, [image_id], **values) == 1:
            written += 1
            faces.extend(_face_rows(image_id, result, key))
    if faces:
        session.execute(insert(Face), faces)
    for part in chunked(list(results), CHUNK):  # other jobs' images waiting for these results
        settle_followers(session, part)
    session.commit()
    if written:
        _checkpoint_finished_job(session, next(iter(results)))
    return written


def _checkpoint_finished_job(session: Session, image_id: int) -> None:
    """A job's end is a boundary: once it has no pending image, its results are copied
    from SQLite's log into the database file (db.session.checkpoint)."""
    if session.get_bind().dialect.name != "sqlite":
        return
    job_id = select(Image.job_id).where(Image.id == image_id).scalar_subquery()
    if session.scalar(select(JobCounts.pending).where(JobCounts.job_id == job_id)) == 0:
        checkpoint(session)


def as_result(image: Image) -> ImageResult:
    """An earlier image's stored outcome, to copy onto a new image with the same content."""
    from emotion_batch.detect import FaceBox
    from emotion_batch.pipeline import FaceResult

    faces = tuple(
        FaceResult(FaceBox(f.x, f.y, f.w, f.h, f.confidence), {e: getattr(f, e) for e in EMOTIONS}, f.dominant)
        for f in image.faces
    )
    return ImageResult(image.path, None, image.width, image.height, image.taken_at, faces)
