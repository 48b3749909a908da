"""Video outputs: the emotion-over-time chart of each video (PNG), its part of the HTML
page, the terminal tables and the CSV rows of `producer report --by video`."""

from __future__ import annotations

import csv
import io
import re
from html import escape
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from emotion_batch.labels import EMOTIONS
from producer.charts import COLOURS, _png, new_figure
from producer.thumbnails import png_uri

COUNTS = ("frames", "frames_no_face", "frames_failed", "faces")
STRONG = 30.0  # % : moments of weaker emotions are left out of the text (kept in JSON)
OUTCOME_WIDTH = 60


def over_time_chart(video: dict[str, Any], title: str) -> bytes:
    """Mean % of each emotion over the faces of each sampled frame, against time; the
    strongest moment of each emotion marked."""
    timeline = video["timeline"]
    figure = new_figure(10, 3.8)
    axes = figure.add_subplot()
    times = [p["t"] for p in timeline]
    for emotion in EMOTIONS:
        values = [p[emotion] for p in timeline]
        if any(v >= 1.0 for v in values):
            axes.plot(
                times,
                values,
                color=COLOURS[emotion],
                label=emotion,
                linewidth=1.3,
                marker="." if len(times) < 120 else None,
            )
    for emotion, moments in video.get("moments", {}).items():
        if moments and moments[0]["percent"] >= 50:
            axes.annotate(
                emotion,
                (moments[0]["t"], moments[0]["percent"]),
                fontsize="x-small",
                color=COLOURS[emotion],
                xytext=(0, 4),
                textcoords="offset points",
                ha="center",
            )
    axes.set_xlim(0, max(video.get("duration_s") or 0, times[-1] if times else 0, 1))
    axes.set_ylim(0, 105)
    axes.set_xlabel("seconds")
    axes.set_ylabel("mean % over the frame's faces")
    axes.set_title(title if timeline else f"{title} (no faces)")
    if timeline:
        axes.legend(
            ncol=len(EMOTIONS), loc="upper center", bbox_to_anchor=(0.5, -0.18), fontsize="small", frameon=False
        )
    return _png(figure)


def chart_name(path: str) -> str:
    """File name of a video's chart: `video-<name>-over-time.png` (safe characters only)."""
    return f"video-{re.sub(r'[^A-Za-z0-9._-]+', '_', Path(path).name)}-over-time.png"


def video_charts(report: dict[str, Any]) -> dict[str, bytes]:
    """One chart per analysed video of a `--by video` report, by file name."""
    charts = {}
    for path, video in report.get("videos", {}).items():
        if video["status"] != "failed":
            charts[chart_name(path)] = over_time_chart(video, f"{Path(path).name}: emotions over time")
    return charts


def _moments_text(video: dict[str, Any]) -> str:
    parts = []
    for emotion, moments in video.get("moments", {}).items():
        if moments and moments[0]["percent"] >= STRONG:
            parts.append(f"{emotion} " + ", ".join(f"{m['t']:.1f}s ({m['percent']:.0f}%)" for m in moments))
    return "; ".join(parts)


def _outcome(video: dict[str, Any], width: int | None = None) -> str:
    text = video["error"] if video["status"] == "failed" else (video.get("note") or video["status"])
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def video_table(report: dict[str, Any], console: Console) -> None:
    """Job video totals, and with `--by video` one row per video and its strongest moments."""
    totals = report.get("video") or {}
    if totals.get("videos"):
        console.print(
            f"videos: {totals['videos']} ({totals['failed']} failed, {totals['pending']} pending), "
            f"{totals['frames']} sampled frames ({totals['frames_no_face']} without a face, "
            f"{totals['frames_failed']} failed), {totals['faces']} faces"
        )
    videos = report.get("videos")
    if not videos:
        return
    table = Table(title="Videos: dominant emotion, % of faces")
    for column in ("video", "outcome", "seconds", "frames", "faces", *EMOTIONS):
        table.add_column(column, justify="left" if column in ("video", "outcome") else "right")
    for path, v in videos.items():
        table.add_row(
            Path(path).name,
            _outcome(v, OUTCOME_WIDTH),
            f"{v['duration_s'] or 0:.0f}",
            str(v["frames"]),
            str(v["faces"]),
            *(f"{v['share'][e]:.0f}" for e in EMOTIONS),
        )
    console.print(table)
    for path, v in videos.items():
        if v["faces"]:
            console.print(f"{Path(path).name} strongest moments: {_moments_text(v)}", markup=False)


def video_csv(report: dict[str, Any]) -> str:
    """One CSV row per video: outcome, counts, dominant counts, shares, means, peak times."""
    out = io.StringIO()
    fields = ["job", "video", "status", "reason", "duration_s", "sample_fps", "samples", *COUNTS]
    fields += [f"{p}_{e}" for p in ("dominant", "share", "mean", "peak_t") for e in EMOTIONS]
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    for path, v in report.get("videos", {}).items():
        row = {
            "job": report["job"],
            "video": path,
            "status": v["status"],
            "reason": v["error"] or v["note"] or "",
            "duration_s": v["duration_s"],
            "sample_fps": v["sample_fps"],
            "samples": v["samples"],
        }
        row.update({k: v[k] for k in COUNTS})
        for e in EMOTIONS:
            row[f"dominant_{e}"] = v["dominant"][e]
            row[f"share_{e}"] = round(v["share"][e], 2)
            row[f"mean_{e}"] = round(v["mean"][e], 2)
            peaks = v["moments"].get(e) or []
            row[f"peak_t_{e}"] = peaks[0]["t"] if peaks else ""
        writer.writerow(row)
    return out.getvalue()


def video_html(report: dict[str, Any], charts: dict[str, bytes]) -> str:
    """The page's video section: totals, one row per video, each video's chart and moments."""
    totals, videos = report.get("video") or {}, report.get("videos") or {}
    if not totals.get("videos"):
        return ""
    head = "".join(f"<th>{c}</th>" for c in ("outcome", "seconds", "frames", "faces", *EMOTIONS))
    rows = "".join(
        f"<tr><td>{escape(Path(p).name)}</td><td>{escape(_outcome(v))}</td><td>{v['duration_s'] or 0:.0f}</td>"
        f"<td>{v['frames']}</td><td>{v['faces']}</td>"
        + "".join(f"<td>{v['share'][e]:.0f}%</td>" for e in EMOTIONS)
        + "</tr>"
        for p, v in videos.items()
    )
    parts = [
        "<h2>Videos</h2><div class='cards'>"
        + "".join(
            f"<div class='card'><b>{int(totals[k])}</b>{k.replace('_', ' ')}</div>"
            for k in ("videos", "failed", "frames", "faces")
        )
        + "</div>",
        f"<table><tr><th>video</th>{head}</tr>{rows}</table>",
    ]
    for path, v in videos.items():
        png = charts.get(chart_name(path))
        if png:
            parts.append(
                f"<h3>{escape(Path(path).name)}</h3><p><img class='chart' alt='{escape(chart_name(path))}' "
                f"src='{png_uri(png)}'></p>"
            )
            if v["faces"]:
                parts.append(f"<p class='muted'>strongest moments: {escape(_moments_text(v))}</p>")
    return "".join(parts)
