"""Aggregate emotion reports, computed with SQL (GROUP BY), per job, folder or date.

The date of an image is its EXIF capture date (`taken_at`) when it has one, else its
file modification date (`file_mtime`); images with neither are grouped as "unknown".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from sqlalchemy import ColumnElement, Integer, Select, SQLColumnExpression, String, case, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from db.jobs import get_job
from db.members import in_job
from db.schema import Face, Image, ImageStatus, face_owner
from db.video_reports import add_video_figures
from emotion_batch.labels import EMOTIONS


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


def combine(groups: Iterable[Summary]) -> Summary:
    """One summary of several groups (counts added, means weighted by faces): the job's
    figures from its folders, or the "other" group of a chart, without another query."""
    total = Summary()
    weighted = dict.fromkeys(EMOTIONS, 0.0)
    for group in groups:
        total.images += group.images
        total.no_face += group.no_face
        total.failed += group.failed
        total.pending += group.pending
        total.faces += group.faces
        for emotion in EMOTIONS:
            total.dominant[emotion] += group.dominant[emotion]
            weighted[emotion] += group.mean[emotion] * group.faces
    if total.faces:
        total.mean = {e: v / total.faces for e, v in weighted.items()}
    return total.finish()


def summary_of(data: dict[str, Any]) -> Summary:
    """A report group (a JSON-ready dict) back as a Summary."""
    return Summary(
        **{k: data[k] for k in ("images", "no_face", "failed", "pending", "faces", "dominant", "share", "mean")}
    )


GroupBy = Literal["job", "folder", "date", "video"]
GROUP_KEYS = {"folder": "folders", "date": "dates"}  # report key holding the groups
UNKNOWN_DATE = "unknown"


def image_date() -> ColumnElement:
    """An image's day (YYYY-MM-DD): capture date when known, else file modification date."""
    return func.date(func.coalesce(Image.taken_at, Image.file_mtime))


class _HourOf(FunctionElement):
    """'YYYY-MM-DD HH' of a date-time, in each dialect's own words."""

    type = String()
    inherit_cache = True


@compiles(_HourOf)
def _hour_sqlite(element: _HourOf, compiler: Any, **kw: Any) -> str:
    return f"strftime('%Y-%m-%d %H', {compiler.process(element.clauses, **kw)})"


@compiles(_HourOf, "postgresql")
def _hour_postgresql(element: _HourOf, compiler: Any, **kw: Any) -> str:
    return f"to_char({compiler.process(element.clauses, **kw)}, 'YYYY-MM-DD HH24')"


def image_hour() -> ColumnElement:
    """An image's hour ('YYYY-MM-DD HH'), from the same time as `image_date`."""
    return _HourOf(func.coalesce(Image.taken_at, Image.file_mtime))


Grouping = GroupBy | Literal["hour"]  # "hour": the timeline of a one-day job, not a report choice


def _key(by: Grouping, job_id: int) -> SQLColumnExpression[Any]:
    """The grouping column; the job's id for "job" (a shared image keeps its first job's
    `job_id`, so the whole job is one group under the id asked for)."""
    if by == "job":
        return literal(job_id, Integer)
    return {"folder": Image.folder, "date": image_date(), "hour": image_hour()}[by]


def _name(key: object) -> str:
    return UNKNOWN_DATE if key is None else str(key)


def _grouped(query: Select, by: Grouping, key: SQLColumnExpression[Any], *more: Any) -> Select:
    """`query` grouped by `key` (and `more`); "job" is one group: no GROUP BY on it."""
    return query.group_by(*([] if by == "job" else [key]), *more)


def _image_counts(session: Session, job_id: int, by: Grouping) -> dict[str, list[int]]:
    key = _key(by, job_id)
    status = Image.status
    query = select(
        key,
        func.count(),
        func.sum(case((status == ImageStatus.NO_FACE.value, 1), else_=0)),
        func.sum(case((status == ImageStatus.FAILED.value, 1), else_=0)),
        func.sum(case((status == ImageStatus.PENDING.value, 1), else_=0)),
    ).where(in_job(job_id))
    rows = session.execute(_grouped(query, by, key))
    return {_name(row[0]): [int(v or 0) for v in row[1:]] for row in rows if row[1]}


def _face_stats(job_id: int, by: Grouping) -> Select:
    key = _key(by, job_id)
    means = [func.avg(getattr(Face, e)) for e in EMOTIONS]
    query = (
        select(key, Face.dominant, func.count(Face.id), *means)
        .join(Image, Face.image_id == face_owner())
        .where(in_job(job_id))
    )
    return _grouped(query, by, key, Face.dominant)


def summarise(session: Session, job_id: int, by: Grouping = "job") -> dict[str, Summary]:
    """Per-group summaries: one group (the job id) for "job", else one per folder, date or hour."""
    groups: dict[str, Summary] = {}
    for key, (images, no_face, failed, pending) in _image_counts(session, job_id, by).items():
        groups[key] = Summary(images=images, no_face=no_face, failed=failed, pending=pending)
    sums: dict[str, dict[str, float]] = {}
    for key, dominant, count, *means in session.execute(_face_stats(job_id, by)):
        summary = groups[_name(key)]
        summary.faces += count
        summary.dominant[dominant] = count
        acc = sums.setdefault(_name(key), dict.fromkeys(EMOTIONS, 0.0))
        for emotion, mean in zip(EMOTIONS, means):
            acc[emotion] += float(mean or 0.0) * count
    for key, summary in groups.items():
        if summary.faces:
            summary.mean = {e: v / summary.faces for e, v in sums[key].items()}
        summary.finish()
    return groups


def job_report(session: Session, job_id: int, by: GroupBy | Sequence[GroupBy] = "job") -> dict[str, Any]:
    """The report model: one JSON-ready dict of the job's fields, its overall summary, and
    for each of `by` that is "folder" or "date" a `folders` or `dates` object of summaries
    (`by=("folder", "date")` gives both), each grouping aggregated once; the overall
    figures are combined from the first grouping (the job is aggregated on its own only
    without one). `report_rows` flattens it. The job's video figures are added by
    `db.video_reports.add_video_figures` (with "video" in `by`: one summary per video)."""
    requested = (by,) if isinstance(by, str) else tuple(by)
    groupings = [g for g in requested if g in GROUP_KEYS]
    job = get_job(session, job_id)
    grouped = {by: summarise(session, job_id, by) for by in groupings}
    if grouped:
        overall = combine(next(iter(grouped.values())).values())
    else:
        overall = summarise(session, job_id).get(str(job_id), Summary().finish())
    report: dict[str, Any] = {"job": job.id, "name": job.name, "backend": job.backend}
    report.update(asdict(overall))
    for key, column in (("model_versions", Image.model_version), ("detectors", Image.detector)):
        found = session.scalars(select(column).where(in_job(job_id), column.is_not(None)).distinct())
        report[key] = sorted(found.all())
    for by, groups in grouped.items():
        report[GROUP_KEYS[by]] = {name: asdict(s) for name, s in sorted(groups.items())}
    return add_video_figures(session, report, "video" if "video" in requested else None)


COUNTS = ("images", "no_face", "failed", "pending", "faces")
REPORT_COLUMNS = (
    "job",
    "by",
    "group",
    *COUNTS,
    *(f"{stat}_{e}" for stat in ("dominant", "share", "mean") for e in EMOTIONS),
)
"""The columns of every tabular report (CSV, Parquet, the table), in this order."""
ALL = "(all)"
PERCENT_DECIMALS = 2


def report_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The one flattening of a report: a row for the whole job (`by` "job", `group`
    "(all)"), then one per folder and per date it holds; counts as ints, shares and mean
    percentages rounded to two decimals. CSV, Parquet and the table all use it."""

    def row(by: str, group: str, data: dict[str, Any]) -> dict[str, Any]:
        flat: dict[str, Any] = {"job": report["job"], "by": by, "group": group}
        flat.update({k: int(data[k]) for k in COUNTS})
        flat.update({f"dominant_{e}": int(data["dominant"][e]) for e in EMOTIONS})
        for stat in ("share", "mean"):
            flat.update({f"{stat}_{e}": round(float(data[stat][e]), PERCENT_DECIMALS) for e in EMOTIONS})
        return flat

    rows = [row("job", ALL, report)]
    for grouping, key in GROUP_KEYS.items():
        rows += [row(grouping, name, data) for name, data in report.get(key, {}).items()]
    return rows
