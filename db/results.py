"""Worker-side writes: attempt counting, reuse of earlier results, storing a batch.

Every write is guarded by `status = 'pending'`, so a redelivered or duplicated batch
never adds a second outcome, and faces have a unique (image_id, face_index).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from db.schema import Face, Image, ImageStatus, utcnow
from emotion_batch.paths import from_db, storable
from emotion_batch.pipeline import ImageResult
from models.labels import EMOTIONS

PENDING = ImageStatus.PENDING.value


@dataclass(frozen=True)
class Claim:
    """The images of a batch still to analyse, and those given up on."""

    live: dict[int, tuple[str, str]]  # image id -> (path, sha256)
    exhausted: list[int]


def claim_attempt(session: Session, image_ids: Sequence[int], max_attempts: int) -> Claim:
    """Count one more delivery for the pending images; fail those past the limit.

    Runs in its own committed transaction before any work, so a batch that kills its
    process still has its attempts counted when it is redelivered.
    """
    rows = session.execute(
        select(Image.id, Image.path, Image.sha256, Image.attempts).where(
            Image.id.in_(list(image_ids)), Image.status == PENDING
        )
    ).all()
    exhausted = [r.id for r in rows if r.attempts >= max_attempts]
    live = {r.id: (from_db(r.path), r.sha256) for r in rows if r.attempts < max_attempts}
    if exhausted:
        reason = f"gave up after {max_attempts} attempts (worker killed or timed out each time)"
        _mark(session, exhausted, status=ImageStatus.FAILED.value, error=reason)
    if live:
        session.execute(
            update(Image).where(Image.id.in_(list(live))).values(attempts=Image.attempts + 1)
        )
    session.commit()
    return Claim(live, exhausted)


def pending_attempts(session: Session, image_ids: Sequence[int]) -> dict[int, int]:
    """Attempts so far of the still-pending images among `image_ids`."""
    rows = session.execute(
        select(Image.id, Image.attempts).where(Image.id.in_(list(image_ids)), Image.status == PENDING)
    )
    return dict(rows.all())


def _mark(session: Session, ids: Sequence[int], **values: object) -> int:
    result = session.execute(
        update(Image)
        .where(Image.id.in_(list(ids)), Image.status == PENDING)
        .values(processed_at=utcnow(), **values)
    )
    return result.rowcount


def fail_images(session: Session, ids: Sequence[int], reason: str) -> int:
    """Record `reason` against still-pending images (one transaction)."""
    count = _mark(session, ids, status=ImageStatus.FAILED.value, error=storable(reason))
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


def reusable(session: Session, sha256s: Sequence[str], key: ResultKey) -> dict[str, Image]:
    """Earlier analysed images with the same content and the same `key`: the one rule
    deciding reuse, at submit time and in the worker."""
    rows = session.scalars(
        select(Image)
        .where(
            Image.sha256.in_(list(sha256s)),
            Image.backend == key.backend,
            Image.model_version == key.model_version,
            Image.detector == key.detector,
            Image.status.in_((ImageStatus.DONE.value, ImageStatus.NO_FACE.value)),
            Image.reused_from.is_(None),
        )
        .order_by(Image.id)
    ).all()
    found: dict[str, Image] = {}
    for image in rows:
        found.setdefault(image.sha256, image)
    return found


def _face_rows(image_id: int, result: ImageResult, key: ResultKey) -> list[dict]:
    rows = []
    for index, face in enumerate(result.faces):
        box = face.box
        row = {"image_id": image_id, "face_index": index, "x": box.x, "y": box.y, "w": box.w,
               "h": box.h, "confidence": box.confidence, "dominant": face.dominant,
               "backend": key.backend, "model_version": key.model_version, "detector": key.detector}
        row.update({emotion: float(face.emotions[emotion]) for emotion in EMOTIONS})
        rows.append(row)
    return rows


def _outcome(result: ImageResult) -> dict[str, object]:
    if result.error:
        return {"status": ImageStatus.FAILED.value, "error": storable(result.error)}
    status = ImageStatus.DONE if result.faces else ImageStatus.NO_FACE
    return {"status": status.value, "error": None, "width": result.width, "height": result.height,
            "taken_at": result.taken_at, "face_count": len(result.faces)}


def store_results(
    session: Session, results: dict[int, ImageResult], key: ResultKey,
    reused: dict[int, Image] | None = None,
) -> int:
    """Write a batch's outcomes and faces in one transaction; return images written."""
    reused = reused or {}
    written, faces = 0, []
    for image_id, result in results.items():
        source = reused.get(image_id)
        values = _outcome(result) | {"backend": key.backend, "model_version": key.model_version,
                                     "detector": key.detector, "reused_from": source.id if source else None}
        if _mark(session, [image_id], **values) == 1:
            written += 1
            faces.extend(_face_rows(image_id, result, key))
    if faces:
        session.execute(insert(Face), faces)
    session.commit()
    return written


def as_result(image: Image) -> ImageResult:
    """An earlier image's stored outcome, to copy onto a new image with the same content."""
    from emotion_batch.detect import FaceBox
    from emotion_batch.pipeline import FaceResult

    faces = tuple(
        FaceResult(FaceBox(f.x, f.y, f.w, f.h, f.confidence),
                   {e: getattr(f, e) for e in EMOTIONS}, f.dominant)
        for f in image.faces
    )
    return ImageResult(image.path, None, image.width, image.height, image.taken_at, faces)
