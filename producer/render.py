"""Rendering reports and progress for people (rich tables) and programs (JSON, CSV)."""

from __future__ import annotations

import csv
import io
import json
import os
import textwrap
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from db.jobs import Progress
from db.reports import COUNTS, PERCENT_DECIMALS, REPORT_COLUMNS, report_rows
from emotion_batch.labels import EMOTIONS
from producer.video_outputs import video_csv, video_table


def counted(n: int, one: str, many: str | None = None) -> str:
    """`n` and the noun in the number it needs: "1 batch", "2 batches"."""
    return f"{n} {one if n == 1 else many or one + 's'}"


KEEP = "\u00a0"  # stands for a space that must not break a line while lines are filled


def fit(parts: Sequence[str], width: int | None, sep: str = ", ") -> str:
    """`parts` joined by `sep`, in lines of at most `width` columns broken between parts
    only, so a figure never parts from its unit; one line when `width` is None. Print the
    result with `soft_wrap=True` so that rich does not wrap it again."""
    text = sep.join(part.replace(" ", KEEP) for part in parts)
    lines = textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) if width else [text]
    return "\n".join(line.replace(KEEP, " ") for line in lines)


PERCENTAGES = ("share", "mean")


def _rounded(value: Any) -> Any:
    """`value` with every `share` and `mean` percentage rounded as in the CSV (the other
    figures, video times included, as they are)."""
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if not isinstance(value, dict):
        return value
    return {
        k: {e: round(p, PERCENT_DECIMALS) for e, p in v.items()} if k in PERCENTAGES and _percents(v) else _rounded(v)
        for k, v in value.items()
    }


def _percents(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(p, float | int) for p in value.values())


def report_json(report: dict[str, Any]) -> str:
    """One JSON object (the stable interface scripts rely on); percentages rounded to
    two decimals, as in the CSV."""
    return json.dumps(_rounded(report), default=str, sort_keys=False)


def report_csv(report: dict[str, Any]) -> str:
    """`db.reports.report_rows` as CSV: one row per group, columns `REPORT_COLUMNS`
    (with `--by video`: one row per video, `producer.video_outputs.video_csv`)."""
    if "videos" in report:
        return video_csv(report)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=REPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(report_rows(report))
    return out.getvalue()


def _short_names(groups: list[str]) -> dict[str, str]:
    """Folder groups relative to their common parent, for narrow tables."""
    paths = [g for g in groups if g.startswith("/")]
    if len(paths) < 2:
        return {g: g for g in groups}
    common = os.path.commonpath(paths)
    return {g: (os.path.relpath(g, common) if g in paths else g) for g in groups}


TABLE_ROWS = 40  # groups shown in the terminal; CSV/JSON/Parquet keep every group
GROUP_MIN_WIDTH = 12  # folded below this, so that the seven emotions fit 80 columns
SHORT = {e: e[:3] for e in EMOTIONS}  # the title says they are % of faces


def report_table(report: dict[str, Any], console: Console, max_rows: int = TABLE_ROWS) -> None:
    """One table, a row per group (the job first, then each folder or date): counts and
    the share of faces per dominant emotion as columns, so it reads in any terminal
    whatever the number of groups. Past `max_rows` groups the biggest are shown, in their
    order, with a note of how many are left out (the file formats keep them all)."""
    rows = report_rows(report)
    groups = rows[1:]
    if len(groups) > max_rows:
        kept = set(sorted(range(len(groups)), key=lambda i: (-groups[i]["images"], i))[:max_rows])
        groups = [g for i, g in enumerate(groups) if i in kept]
    shown = [rows[0], *groups]
    names = _short_names([r["group"] for r in shown])
    table = Table(
        title=f"Job {report['job']} ({report['name']}, backend {report['backend']}): "
        "share of faces per dominant emotion, %",
        box=box.SIMPLE_HEAD,
        show_edge=False,  # columns apart by the box's one blank, no padding: 80 columns hold them all
        padding=0,
    )
    counts = [k for k in COUNTS if k in ("images", "faces") or any(r[k] for r in shown)]  # all-zero columns left out
    widest = max(len(name) for name in names.values())
    table.add_column("group", overflow="fold", min_width=min(widest, GROUP_MIN_WIDTH))  # never squeezed to nothing
    for col in (*(k.replace("_", " ") for k in counts), *(SHORT[e] for e in EMOTIONS)):
        table.add_column(col, justify="right", no_wrap=True)
    for index, r in enumerate(shown):
        shares = [f"{r[f'share_{e}']:.0f}" if r["faces"] else "-" for e in EMOTIONS]
        table.add_row(names[r["group"]], *(str(r[k]) for k in counts), *shares, end_section=index == 0)
    console.print(table)
    left_out = len(rows) - 1 - len(groups)
    if left_out:
        console.print(
            f"{left_out} more groups not shown (the {max_rows} with the most images are); "
            "--format csv, json or parquet lists every group"
        )
    means = [f"{e} {report['mean'][e]:.1f}" for e in EMOTIONS]
    means[0] = f"mean % over the job's faces: {means[0]}"
    console.print(fit(means, console.width), soft_wrap=True)
    if report.get("model_versions"):
        console.print(f"model version(s): {', '.join(report['model_versions'])}")
    if report.get("detectors"):
        console.print(f"face detector(s): {', '.join(report['detectors'])}")
    video_table(report, console)


def progress_line(p: Progress, width: int | None = None) -> str:
    """The status: done / failed / pending, faces, rate and ETA; one line, or lines of
    at most `width` columns broken between figures (see `fit`)."""
    eta = f"{p.eta_seconds:.0f}s" if p.eta_seconds is not None else "-"
    return fit(
        [
            f"job {p.job_id}: {p.finished}/{p.total} finished (done {p.done}",
            f"no face {p.no_face}",
            f"failed {p.failed}",
            f"pending {p.pending})",
            f"{p.faces} faces",
            f"{p.rate:.1f} images/s",
            f"ETA {eta}",
        ],
        width,
    )
