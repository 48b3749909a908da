"""Rendering reports and progress for people (rich tables) and programs (JSON, CSV)."""

from __future__ import annotations

import csv
import io
import json
import os
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


def _short_names(groups: list[str]) -> dict[str, str]:
    """Folder groups relative to their common parent, for narrow tables."""
    paths = [g for g in groups if g.startswith("/")]
    if len(paths) < 2:
        return {g: g for g in groups}
    common = os.path.commonpath(paths)
    return {g: (os.path.relpath(g, common) if g in paths else g) for g in groups}


def report_table(report: dict[str, Any], console: Console) -> None:
    """A counts table per group, then one emotion table: share of faces per dominant
    emotion for the whole job and each group with faces, and the job's mean percentages."""
    rows = _rows(report)
    names = _short_names([group for group, _ in rows])
    counts = Table(title=f"Job {report['job']} ({report['name']}, backend {report['backend']})")
    for col in ("group", "images", "no face", "failed", "pending", "faces"):
        counts.add_column(col, justify="right" if col != "group" else "left")
    for group, d in rows:
        counts.add_row(names[group], *(str(d[k]) for k in ("images", "no_face", "failed", "pending", "faces")))
    console.print(counts)
    with_faces = [(group, d) for group, d in rows if d["faces"]]
    emotions = Table(title="Dominant emotion, % of faces (mean % over faces for the job)")
    emotions.add_column("emotion")
    for group, d in with_faces:
        emotions.add_column(f"{names[group]} ({d['faces']})", justify="right")
    emotions.add_column("mean %", justify="right")
    for e in EMOTIONS:
        shares = [f"{d['share'][e]:.1f}" for _, d in with_faces]
        emotions.add_row(e, *shares, f"{report['mean'][e]:.1f}")
    console.print(emotions)
    if report.get("model_versions"):
        console.print(f"model version(s): {', '.join(report['model_versions'])}")


def progress_line(p: Progress) -> str:
    """A one-line status: done / failed / pending, faces, rate and ETA."""
    eta = f"{p.eta_seconds:.0f}s" if p.eta_seconds is not None else "-"
    return (
        f"job {p.job_id}: {p.finished}/{p.total} finished (done {p.done}, no face {p.no_face}, "
        f"failed {p.failed}, pending {p.pending}), {p.faces} faces, {p.rate:.1f} images/s, ETA {eta}"
    )
