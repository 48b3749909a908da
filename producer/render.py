"""Rendering reports and progress for people (rich tables) and programs (JSON, CSV)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from db.jobs import Progress
from models.labels import EMOTIONS


def report_json(report: dict[str, Any]) -> str:
    """One JSON object (the stable interface scripts rely on)."""
    return json.dumps(report, default=str, sort_keys=False)


def _rows(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    rows = [("(all)", report)]
    rows += list(report.get("folders", {}).items())
    rows += list(report.get("dates", {}).items())
    return rows


def report_csv(report: dict[str, Any]) -> str:
    """One CSV row per group: counts, dominant counts, shares and mean percentages."""
    out = io.StringIO()
    fields = ["job", "group", "images", "no_face", "failed", "pending", "faces"]
    fields += [f"dominant_{e}" for e in EMOTIONS] + [f"share_{e}" for e in EMOTIONS]
    fields += [f"mean_{e}" for e in EMOTIONS]
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    for group, data in _rows(report):
        row = {"job": report["job"], "group": group}
        row.update({k: data[k] for k in ("images", "no_face", "failed", "pending", "faces")})
        for e in EMOTIONS:
            row[f"dominant_{e}"] = data["dominant"][e]
            row[f"share_{e}"] = round(data["share"][e], 2)
            row[f"mean_{e}"] = round(data["mean"][e], 2)
        writer.writerow(row)
    return out.getvalue()


def report_table(report: dict[str, Any], console: Console) -> None:
    """Counts table and an emotion table (faces, share, mean %) per group."""
    title = f"Job {report['job']} ({report['name']}, backend {report['backend']})"
    counts = Table(title=title)
    for col in ("group", "images", "no face", "failed", "pending", "faces"):
        counts.add_column(col, justify="right" if col != "group" else "left")
    for group, d in _rows(report):
        counts.add_row(group, *(str(d[k]) for k in ("images", "no_face", "failed", "pending", "faces")))
    console.print(counts)
    for group, d in _rows(report):
        table = Table(title=f"Emotions: {group}")
        for col in ("emotion", "dominant in", "share %", "mean %"):
            table.add_column(col, justify="right" if col != "emotion" else "left")
        for e in EMOTIONS:
            table.add_row(e, str(d["dominant"][e]), f"{d['share'][e]:.1f}", f"{d['mean'][e]:.1f}")
        console.print(table)
    if report.get("model_versions"):
        console.print(f"model version(s): {', '.join(report['model_versions'])}")


def progress_line(p: Progress) -> str:
    """A one-line status: done / failed / pending, faces, rate and ETA."""
    eta = f"{p.eta_seconds:.0f}s" if p.eta_seconds is not None else "-"
    return (
        f"job {p.job_id}: {p.finished}/{p.total} finished (done {p.done}, no face {p.no_face}, "
        f"failed {p.failed}, pending {p.pending}), {p.faces} faces, {p.rate:.1f} images/s, ETA {eta}"
    )
