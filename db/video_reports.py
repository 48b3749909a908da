"""Reports on a job's videos, computed with SQL: totals (videos, frames, faces) per job or
folder, and per video the share of each dominant emotion, the mean percentages, the
emotion over time (mean over the faces of each sampled frame) and the most intense
moments (the frames with the highest mean percentage of each emotion).

Video figures are kept apart from the photo figures (`images`, `faces`): a frame is
never counted as an image.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from db.video_schema import Frame, FrameFace, Video
from emotion_batch.labels import EMOTIONS

TOP_MOMENTS = 3


@dataclass
class VideoTotals:
    """Counts of a group of videos: videos by status, sampled frames by outcome, faces."""

    videos: int = 0
    failed: int = 0
    pending: int = 0
    frames: int = 0
    frames_no_face: int = 0
    frames_failed: int = 0
    faces: int = 0


def video_totals(session: Session, job_id: int, by_folder: bool = False) -> dict[str, VideoTotals]:
    """Totals per folder, or for the whole job (one group, key "job"); empty without videos."""
    folders: dict[str, VideoTotals] = {}
    videos = (
        select(
            Video.folder,
            func.count(Video.id),
            func.sum(case((Video.status == "failed", 1), else_=0)),
            func.sum(case((Video.status == "pending", 1), else_=0)),
        )
        .where(Video.job_id == job_id)
        .group_by(Video.folder)
    )
    for name, count, failed, pending in session.execute(videos):
        folders[name] = VideoTotals(int(count), int(failed or 0), int(pending or 0))
    frames = (
        select(
            Video.folder,
            func.count(Frame.id),
            func.sum(case((Frame.status == "no_face", 1), else_=0)),
            func.sum(case((Frame.status == "failed", 1), else_=0)),
            func.sum(Frame.face_count),
        )
        .join(Video, Video.id == Frame.video_id)
        .where(Video.job_id == job_id)
        .group_by(Video.folder)
    )
    for name, count, no_face, failed, faces in session.execute(frames):
        group = folders[name]
        group.frames, group.frames_no_face = int(count), int(no_face or 0)
        group.frames_failed, group.faces = int(failed or 0), int(faces or 0)
    if by_folder or not folders:
        return folders
    total = VideoTotals()
    for group in folders.values():
        for name, value in asdict(group).items():
            setattr(total, name, getattr(total, name) + value)
    return {"job": total}


@dataclass
class VideoSummary:
    """One video: its outcome, its frames and faces, and its emotions over time."""

    path: str
    folder: str
    status: str
    error: str | None
    note: str | None
    duration_s: float | None
    sample_fps: float
    samples: int
    frames: int = 0
    frames_no_face: int = 0
    frames_failed: int = 0
    faces: int = 0
    dominant: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EMOTIONS, 0))
    share: dict[str, float] = field(default_factory=lambda: dict.fromkeys(EMOTIONS, 0.0))
    mean: dict[str, float] = field(default_factory=lambda: dict.fromkeys(EMOTIONS, 0.0))
    moments: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    timeline: list[dict[str, float]] = field(default_factory=list)

    def to_json(self, timeline: bool = True) -> dict[str, Any]:
        data = asdict(self)
        if not timeline:
            data.pop("timeline")
        return data


def _timelines(session: Session, job_id: int) -> dict[int, list[dict[str, float]]]:
    """Per video: one point per frame with faces (its time, face count, mean % per emotion)."""
    means = [func.avg(getattr(FrameFace, e)) for e in EMOTIONS]
    query = (
        select(Frame.video_id, Frame.timestamp_s, func.count(FrameFace.id), *means)
        .join(Frame, Frame.id == FrameFace.frame_id)
        .join(Video, Video.id == Frame.video_id)
        .where(Video.job_id == job_id)
        .group_by(Frame.video_id, Frame.id, Frame.timestamp_s)
        .order_by(Frame.video_id, Frame.timestamp_s)
    )
    timelines: dict[int, list[dict[str, float]]] = defaultdict(list)
    for video_id, timestamp, faces, *values in session.execute(query):
        point = {"t": float(timestamp), "faces": int(faces)}
        point.update({e: float(v or 0.0) for e, v in zip(EMOTIONS, values)})
        timelines[video_id].append(point)
    return timelines


def _moments(timeline: list[dict[str, float]], top: int) -> dict[str, list[dict[str, float]]]:
    """For each emotion, the `top` frames where it is strongest (time, mean %)."""
    moments = {}
    for emotion in EMOTIONS:
        best = sorted(timeline, key=lambda p: (-p[emotion], p["t"]))[:top]
        moments[emotion] = [{"t": p["t"], "percent": round(p[emotion], 2)} for p in best]
    return moments


def video_summaries(session: Session, job_id: int, top: int = TOP_MOMENTS) -> list[VideoSummary]:
    """Every video of the job, in path order, with its figures."""
    videos = session.scalars(select(Video).where(Video.job_id == job_id).order_by(Video.path)).all()
    by_id = {
        v.id: VideoSummary(v.path, v.folder, v.status, v.error, v.note, v.duration_s, v.sample_fps, v.samples)
        for v in videos
    }
    frames = (
        select(
            Frame.video_id,
            func.count(Frame.id),
            func.sum(case((Frame.status == "no_face", 1), else_=0)),
            func.sum(case((Frame.status == "failed", 1), else_=0)),
        )
        .join(Video, Video.id == Frame.video_id)
        .where(Video.job_id == job_id)
        .group_by(Frame.video_id)
    )
    for video_id, count, no_face, failed in session.execute(frames):
        summary = by_id[video_id]
        summary.frames, summary.frames_no_face, summary.frames_failed = int(count), int(no_face or 0), int(failed or 0)
    means = [func.avg(getattr(FrameFace, e)) for e in EMOTIONS]
    faces = (
        select(Frame.video_id, FrameFace.dominant, func.count(FrameFace.id), *means)
        .join(Frame, Frame.id == FrameFace.frame_id)
        .join(Video, Video.id == Frame.video_id)
        .where(Video.job_id == job_id)
        .group_by(Frame.video_id, FrameFace.dominant)
    )
    sums: dict[int, dict[str, float]] = defaultdict(lambda: dict.fromkeys(EMOTIONS, 0.0))
    for video_id, dominant, count, *values in session.execute(faces):
        summary = by_id[video_id]
        summary.faces += int(count)
        summary.dominant[dominant] = int(count)
        for emotion, value in zip(EMOTIONS, values):
            sums[video_id][emotion] += float(value or 0.0) * int(count)
    timelines = _timelines(session, job_id)
    for video_id, summary in by_id.items():
        if summary.faces:
            summary.share = {e: 100.0 * n / summary.faces for e, n in summary.dominant.items()}
            summary.mean = {e: v / summary.faces for e, v in sums[video_id].items()}
        summary.timeline = timelines.get(video_id, [])
        summary.moments = _moments(summary.timeline, top) if summary.timeline else {}
    return list(by_id.values())


def add_video_figures(session: Session, report: dict[str, Any], by: str | None = None) -> dict[str, Any]:
    """Add the job's video figures to a job report (in place; returned too).

    `video`: totals of the job's videos; each folder group (with `folders`) gets its own
    `video` totals, and a folder holding only videos appears as a group with no images.
    With `by` "video", `videos` maps each video's path to its summary and timeline.
    """
    job_id = report["job"]
    report["video"] = asdict(video_totals(session, job_id).get("job", VideoTotals()))
    if "folders" in report:
        empty = {k: v for k, v in report.items() if k in ("images", "no_face", "failed", "pending", "faces")}
        for folder, totals in video_totals(session, job_id, by_folder=True).items():
            group = report["folders"].setdefault(folder, _empty_group(report, empty))
            group["video"] = asdict(totals)
        report["folders"] = dict(sorted(report["folders"].items()))
    if by == "video":
        report["videos"] = {s.path: s.to_json() for s in video_summaries(session, job_id)}
    return report


def _empty_group(report: dict[str, Any], counts: dict[str, Any]) -> dict[str, Any]:
    """A folder group with no images, shaped like the report's other groups."""
    group: dict[str, Any] = {k: 0 for k in counts}
    for key in ("dominant", "share", "mean"):
        if key in report:
            group[key] = dict.fromkeys(report[key], 0 if key == "dominant" else 0.0)
    return group
