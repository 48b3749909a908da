"""PNG charts of a report: emotion distribution per group (folder) and share over time.

Readable at any scale: the distribution shows the `TOP_GROUPS` largest groups (by
images) and one "other" bar for the rest, and the timeline buckets dates by day, week,
month or year so it never has more than `MAX_POINTS` points (a one-day job: by hour, on
that day's axis); the image size is bounded.
Uses matplotlib's object API with the Agg canvas: no global pyplot state, no display.
"""

from __future__ import annotations

import io
from dataclasses import asdict
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from db.reports import UNKNOWN_DATE, combine, summary_of
from emotion_batch.labels import EMOTIONS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLOURS = {
    "angry": "#d62728",
    "disgust": "#8c564b",
    "fear": "#9467bd",
    "happy": "#2ca02c",
    "sad": "#1f77b4",
    "surprise": "#ff7f0e",
    "neutral": "#7f7f7f",
}
MAX_LABEL = 40
TOP_GROUPS = 20
MAX_POINTS = 100


def new_figure(width: float, height: float) -> Figure:
    """A matplotlib figure (imported here, not at start: every CLI command loads this
    module, few of them draw)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _png(figure: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else "…" + label[-(MAX_LABEL - 1) :]


def top_groups(
    groups: dict[str, dict[str, Any]], top: int = TOP_GROUPS, noun: str = "folders"
) -> dict[str, dict[str, Any]]:
    """The `top` groups with the most images (ties by name), in their original order, and
    the rest combined into one "other (N folders)" group."""
    if len(groups) <= top + 1:
        return dict(groups)
    ranked = sorted(groups, key=lambda n: (-groups[n]["images"], n))
    kept = set(ranked[:top])
    rest = [summary_of(groups[n]) for n in ranked[top:]]
    out = {n: g for n, g in groups.items() if n in kept}
    out[f"other ({len(rest)} {noun})"] = asdict(combine(rest))
    return out


def distribution_chart(groups: dict[str, dict[str, Any]], title: str) -> bytes:
    """Stacked horizontal bars: share of faces per dominant emotion in each of the top
    groups and in "other" (at most TOP_GROUPS + 1 bars whatever the number of groups)."""
    groups = top_groups(groups)
    names = [n for n, g in groups.items() if g["faces"]] or list(groups)
    figure = new_figure(9, 1.2 + 0.45 * max(len(names), 1))
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
    axes.legend(
        ncol=len(EMOTIONS),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.18 - 0.4 / max(len(names), 1)),
        fontsize="small",
        frameon=False,
    )
    return _png(figure)


BUCKETS = {
    "day": lambda d: d,
    "week": lambda d: d - timedelta(days=d.weekday()),  # the week's Monday
    "month": lambda d: d.replace(day=1),
    "year": lambda d: d.replace(month=1, day=1),
}


def bucket_unit(first: date, last: date, max_points: int = MAX_POINTS) -> str:
    """The finest of day, week, month, year that spans first..last in at most `max_points`."""
    days = (last - first).days
    if days < max_points:
        return "day"
    if days // 7 + 1 < max_points:
        return "week"
    if (last.year - first.year) * 12 + last.month - first.month < max_points:
        return "month"
    return "year"


def _buckets(dates: dict[str, dict[str, Any]]) -> tuple[list[date], list[dict[str, int]], str]:
    """Dominant-emotion counts per day, week, month or year (at most MAX_POINTS buckets)."""
    days = sorted(d for d, g in dates.items() if d != UNKNOWN_DATE and g["faces"])
    if not days:
        return [], [], "day"
    unit = bucket_unit(date.fromisoformat(days[0]), date.fromisoformat(days[-1]))
    start_of = BUCKETS[unit]
    buckets: dict[date, dict[str, int]] = {}
    for day in days:
        counts = buckets.setdefault(start_of(date.fromisoformat(day)), dict.fromkeys(EMOTIONS, 0))
        for emotion in EMOTIONS:
            counts[emotion] += dates[day]["dominant"][emotion]
    keys = sorted(buckets)
    return keys, [buckets[k] for k in keys], unit


def one_day(dates: dict[str, dict[str, Any]]) -> bool:
    """True when the faces of a report's dates all lie on one known day: its timeline is
    drawn by hour (`hours`), not as one dot on an axis of years."""
    return len([d for d, g in dates.items() if d != UNKNOWN_DATE and g["faces"]]) == 1


def _hourly(hours: dict[str, dict[str, Any]]) -> tuple[list[datetime], list[dict[str, int]], str]:
    """Dominant-emotion counts per hour ('YYYY-MM-DD HH' groups), in order."""
    keys = sorted(h for h, g in hours.items() if h != UNKNOWN_DATE and g["faces"])
    return [datetime.strptime(h, "%Y-%m-%d %H") for h in keys], [hours[h]["dominant"] for h in keys], "hour"


def timeline_chart(
    dates: dict[str, dict[str, Any]], title: str, hours: dict[str, dict[str, Any]] | None = None
) -> bytes:
    """Share of each dominant emotion per hour (`hours`: a one-day job), day, week, month
    or year (capture date, else file date)."""
    return _png(timeline_figure(dates, title, hours))


def timeline_figure(
    dates: dict[str, dict[str, Any]], title: str, hours: dict[str, dict[str, Any]] | None = None
) -> Figure:
    """The figure of `timeline_chart`: its x axis spans what the data spans."""
    x, counts, unit = _hourly(hours) if hours and one_day(dates) else _buckets(dates)
    figure = new_figure(9, 4)
    axes = figure.add_subplot()
    for emotion in EMOTIONS:
        shares = [100.0 * c[emotion] / max(sum(c.values()), 1) for c in counts]
        if any(shares):
            axes.plot(
                x,  # type: ignore[arg-type]  # matplotlib plots dates; its stubs say numbers
                shares,
                marker="o" if len(x) <= 40 else None,
                color=COLOURS[emotion],
                label=emotion,
            )
    axes.set_ylim(0, 100)
    axes.set_ylabel(f"% of faces per {unit}")
    axes.set_title(title if x else f"{title} (no dated faces)")
    if unit == "hour" and x:
        _day_axis(axes, datetime.combine(x[0], time()))  # midnight of the day
    figure.autofmt_xdate()
    if x:
        axes.legend(
            ncol=len(EMOTIONS), loc="upper center", bbox_to_anchor=(0.5, -0.25), fontsize="small", frameon=False
        )
    return figure


def _day_axis(axes: Any, day: datetime) -> None:
    """One day from midnight to midnight, ticks every three hours, the day named below."""
    from matplotlib import dates as mdates

    axes.set_xlim(day, day + timedelta(days=1))
    axes.xaxis.set_major_locator(mdates.HourLocator(byhour=range(0, 24, 3)))
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    axes.set_xlabel(day.strftime("%Y-%m-%d"))


def job_charts(
    folder_report: dict[str, Any], date_report: dict[str, Any], hours: dict[str, dict[str, Any]] | None = None
) -> dict[str, bytes]:
    """The job's charts by file name: emotions per folder, share over time (by hour with
    `hours` when the job's faces lie on one day)."""
    job = folder_report["job"]
    return {
        "emotions-by-folder.png": distribution_chart(folder_report["folders"], f"Job {job}: emotions per folder"),
        "share-over-time.png": timeline_chart(date_report["dates"], f"Job {job}: emotions over time", hours),
    }


def write_charts(charts: dict[str, bytes], out_dir: Path) -> list[Path]:
    """Write each chart into `out_dir` (created); return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, png in charts.items():
        (out_dir / name).write_bytes(png)
        paths.append(out_dir / name)
    return paths
