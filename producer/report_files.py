"""A report as a table of groups (pandas), for Parquet and other columnar files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from db.reports import GROUP_KEYS
from models.labels import EMOTIONS

COUNTS = ("images", "no_face", "failed", "pending", "faces")


def _row(job: int, by: str, group: str, data: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"job": job, "by": by, "group": group}
    row.update({k: int(data[k]) for k in COUNTS})
    for prefix in ("dominant", "share", "mean"):
        row.update({f"{prefix}_{e}": data[prefix][e] for e in EMOTIONS})
    return row


def report_frame(report: dict[str, Any]) -> pd.DataFrame:
    """One row for the whole job ("(all)") and one per folder or date when grouped."""
    rows = [_row(report["job"], "job", "(all)", report)]
    for by, key in GROUP_KEYS.items():
        rows += [_row(report["job"], by, name, data) for name, data in report.get(key, {}).items()]
    return pd.DataFrame(rows)


def write_parquet(report: dict[str, Any], path: Path) -> None:
    """The report's groups as a Parquet file (pyarrow)."""
    report_frame(report).to_parquet(path, index=False)
