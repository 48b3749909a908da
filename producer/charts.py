"""PNG charts of a report: emotion distribution per group (folder) and share over time.

Uses matplotlib's object API with the Agg canvas: no global pyplot state, no display.
"""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from db.reports import UNKNOWN_DATE
from models.labels import EMOTIONS

COLOURS = {"angry": "#d62728", "disgust": "#8c564b", "fear": "#9467bd", "happy": "#2ca02c",
           "sad": "#1f77b4", "surprise": "#ff7f0e", "neutral": "#7f7f7f"}
MAX_LABEL = 40
MONTHLY_AFTER_DAYS = 92


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else "…" + label[-(MAX_LABEL - 1):]


def distribution_chart(groups: dict[str, dict[str, Any]], title: str) -> bytes:
    """Stacked horizontal bars: share of faces per dominant emotion in each group."""
    names = [n for n, g in groups.items() if g["faces"]] or list(groups)
    figure = Figure(figsize=(9, 1.2 + 0.45 * max(len(names), 1)))
    axes = figure.add_subplot()
    left = [0.0] * len(names)
    for emotion in EMOTIONS:
        widths = [groups[n]["share"][emotion] for n in names]
        axes.barh([_short(n) for n in names], widths, left=left, color=COLOURS[emotion], label=emotion)
        left = [a + b for a, b in zip(left, widths)]
    axes.set_xlim(0, 100)
    axes.set_xlabel("% of faces (dominant emotion)")
    axes.invert_yaxis()
    axes.set_title(title)
    axes.legend(ncol=len(EMOTIONS), loc="upper center", bbox_to_anchor=(0.5, -0.18 - 0.4 / max(len(names), 1)),
                fontsize="small", frameon=False)
    return _png(figure)


def _buckets(dates: dict[str, dict[str, Any]]) -> tuple[list[date], list[dict[str, int]], str]:
    """Dominant-emotion counts per day, or per month when the days span over MONTHLY_AFTER_DAYS."""
    days = sorted(d for d, g in dates.items() if d != UNKNOWN_DATE and g["faces"])
    if not days:
        return [], [], "day"
    monthly = (date.fromisoformat(days[-1]) - date.fromisoformat(days[0])).days > MONTHLY_AFTER_DAYS
    buckets: dict[date, dict[str, int]] = {}
    for day in days:
        when = date.fromisoformat(day[:7] + "-01" if monthly else day)
        counts = buckets.setdefault(when, dict.fromkeys(EMOTIONS, 0))
        for emotion in EMOTIONS:
            counts[emotion] += dates[day]["dominant"][emotion]
    keys = sorted(buckets)
    return keys, [buckets[k] for k in keys], "month" if monthly else "day"


def timeline_chart(dates: dict[str, dict[str, Any]], title: str) -> bytes:
    """Share of each dominant emotion per day or month (capture date, else file date)."""
    x, counts, unit = _buckets(dates)
    figure = Figure(figsize=(9, 4))
    axes = figure.add_subplot()
    for emotion in EMOTIONS:
        shares = [100.0 * c[emotion] / max(sum(c.values()), 1) for c in counts]
        if any(shares):
            axes.plot(x, shares, marker="o", color=COLOURS[emotion], label=emotion)
    axes.set_ylim(0, 100)
    axes.set_ylabel(f"% of faces per {unit}")
    axes.set_title(title if x else f"{title} (no dated faces)")
    figure.autofmt_xdate()
    if x:
        axes.legend(ncol=len(EMOTIONS), loc="upper center", bbox_to_anchor=(0.5, -0.25), fontsize="small",
                    frameon=False)
    return _png(figure)


def job_charts(folder_report: dict[str, Any], date_report: dict[str, Any]) -> dict[str, bytes]:
    """The job's charts by file name: emotions per folder, share over time."""
    job = folder_report["job"]
    return {
        "emotions-by-folder.png": distribution_chart(folder_report["folders"], f"Job {job}: emotions per folder"),
        "share-over-time.png": timeline_chart(date_report["dates"], f"Job {job}: emotions over time"),
    }


def write_charts(charts: dict[str, bytes], out_dir: Path) -> list[Path]:
    """Write each chart into `out_dir` (created); return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, png in charts.items():
        (out_dir / name).write_bytes(png)
        paths.append(out_dir / name)
    return paths
