"""Aggregate emotion reports, computed with SQL (GROUP BY), per job and per folder."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session

from db.schema import Face, Image, ImageStatus, Job
from models.labels import EMOTIONS


@dataclass
class Summary:
    """Counts and emotion statistics of one group of images (a job or a folder)."""

    images: int = 0
    no_face: int = 0
    failed: int = 0
    pending: int = 0
    faces: int = 0
    dominant: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EMOTIONS, 0))
    share: dict[str, float] = field(default_factory=lambda: dict.fromkeys(EMOTIONS, 0.0))
    mean: dict[str, float] = field(default_factory=lambda: dict.fromkeys(EMOTIONS, 0.0))

    def finish(self) -> Summary:
        """Fill `share` (percent of faces per dominant emotion) from the counts."""
        total = sum(self.dominant.values())
        self.share = {e: (100.0 * n / total if total else 0.0) for e, n in self.dominant.items()}
        return self


def _image_counts(session: Session, job_id: int, by_folder: bool) -> dict[str, list[int]]:
    key = Image.folder if by_folder else Image.job_id
    status = Image.status
    query = select(
        key, func.count(),
        func.sum(case((status == ImageStatus.NO_FACE.value, 1), else_=0)),
        func.sum(case((status == ImageStatus.FAILED.value, 1), else_=0)),
        func.sum(case((status == ImageStatus.PENDING.value, 1), else_=0)),
    ).where(Image.job_id == job_id).group_by(key)
    return {str(row[0]): [int(v or 0) for v in row[1:]] for row in session.execute(query)}


def _face_stats(session: Session, job_id: int, by_folder: bool) -> Select:
    key = Image.folder if by_folder else Image.job_id
    means = [func.avg(getattr(Face, e)) for e in EMOTIONS]
    return (
        select(key, Face.dominant, func.count(Face.id), *means)
        .join(Image, Face.image_id == Image.id)
        .where(Image.job_id == job_id)
        .group_by(key, Face.dominant)
    )


def summarise(session: Session, job_id: int, by_folder: bool = False) -> dict[str, Summary]:
    """Per-group summaries (one group "job" unless `by_folder`)."""
    groups: dict[str, Summary] = {}
    for key, (images, no_face, failed, pending) in _image_counts(session, job_id, by_folder).items():
        groups[key] = Summary(images=images, no_face=no_face, failed=failed, pending=pending)
    sums: dict[str, dict[str, float]] = {}
    for key, dominant, count, *means in session.execute(_face_stats(session, job_id, by_folder)):
        summary = groups[str(key)]
        summary.faces += count
        summary.dominant[dominant] = count
        acc = sums.setdefault(str(key), dict.fromkeys(EMOTIONS, 0.0))
        for emotion, mean in zip(EMOTIONS, means):
            acc[emotion] += float(mean or 0.0) * count
    for key, summary in groups.items():
        if summary.faces:
            summary.mean = {e: v / summary.faces for e, v in sums[key].items()}
        summary.finish()
    return groups


def job_report(session: Session, job_id: int, by_folder: bool = False) -> dict[str, Any]:
    """The report as one JSON-ready dict: job fields, overall summary, optional folders."""
    job = session.get(Job, job_id)
    if job is None:
        raise LookupError(f"no job {job_id}")
    overall = summarise(session, job_id).get(str(job_id), Summary().finish())
    report: dict[str, Any] = {"job": job.id, "name": job.name, "backend": job.backend}
    report.update(asdict(overall))
    versions = session.scalars(
        select(Image.model_version).where(Image.job_id == job_id, Image.model_version.is_not(None)).distinct()
    ).all()
    report["model_versions"] = sorted(versions)
    if by_folder:
        folders = summarise(session, job_id, by_folder=True)
        report["folders"] = {name: asdict(s) for name, s in sorted(folders.items())}
    return report
